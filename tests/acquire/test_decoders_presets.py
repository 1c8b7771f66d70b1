"""The device presets on payloads written after each firmware's documented format.

The payloads are made up for these tests, with the layout, key names and
value types that Tasmota, Zigbee2MQTT, Shelly Gen2, ESPHome, The Things
Stack v3 and Home Assistant's statestream document.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from labdock.acquire.config import AcquireConfig
from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    create_decoder,
    registry,
)
from labdock.acquire.pipeline import Pipeline
from labdock.acquire.points import Point

ARRIVAL = 1_764_000_000_000_000_000


def run(
    name: str, topic: str, payload: bytes | str, **options: Any
) -> tuple[list[Point], dict[str, int]]:
    context = DecodeContext(topic, "m", {"site": "lab"}, ARRIVAL)
    data = payload.encode() if isinstance(payload, str) else payload
    points = create_decoder(name, options).decode(data, context)
    return points, context.dropped


def rejected(name: str, topic: str, payload: bytes, **options: Any) -> str:
    with pytest.raises(DecodeError) as caught:
        run(name, topic, payload, **options)
    assert caught.value.detail
    return caught.value.reason


# Tasmota


TASMOTA_SENSOR = json.dumps(
    {
        "Time": "2024-03-05T14:22:10",
        "AM2301": {"Temperature": 21.3, "Humidity": 45.2, "DewPoint": 8.9},
        "DS18B20-1": {"Id": "01144A0CB2AA", "Temperature": 22.1},
        "ENERGY": {
            "TotalStartTime": "2024-01-01T00:00:00",
            "Total": 12.345,
            "Power": [10, 20],
            "Voltage": 230,
        },
        "Switch1": "ON",
        "TempUnit": "C",
    }
)


def test_tasmota_sensor_one_point_per_sensor() -> None:
    points, dropped = run(
        "tasmota", "tele/lab-plug/SENSOR", TASMOTA_SENSOR, timezone="Europe/Berlin"
    )
    by_sensor = {p.tags.get("sensor"): p for p in points}
    assert set(by_sensor) == {"AM2301", "DS18B20-1", "ENERGY", None}
    assert by_sensor["AM2301"].fields == {
        "Temperature": 21.3,
        "Humidity": 45.2,
        "DewPoint": 8.9,
    }
    assert by_sensor["DS18B20-1"].tags["sensor_id"] == "01144A0CB2AA"
    assert by_sensor["DS18B20-1"].fields == {"Temperature": 22.1}
    assert by_sensor["ENERGY"].fields == {
        "TotalStartTime": "2024-01-01T00:00:00",
        "Total": 12.345,
        "Power_0": 10.0,
        "Power_1": 20.0,
        "Voltage": 230.0,
    }
    assert by_sensor[None].fields == {"Switch1": True}
    # 14:22:10 in Berlin (UTC+1 in March before the change) is 13:22:10Z.
    assert {p.time_ns for p in points} == {1_709_644_930_000_000_000}
    assert all(p.tags["TempUnit"] == "C" and p.tags["site"] == "lab" for p in points)
    assert dropped == {}


def test_tasmota_time_with_offset_ignores_zone() -> None:
    payload = '{"Time":"2024-03-05T14:22:10+01:00","BME280":{"Pressure":1013.2}}'
    points, _ = run("tasmota", "tele/x/SENSOR", payload, timezone="America/New_York")
    assert points[0].time_ns == 1_709_644_930_000_000_000


def test_tasmota_unsynchronized_clock_uses_arrival() -> None:
    payload = '{"Time":"1970-01-01T00:00:42","AM2301":{"Temperature":21.3}}'
    points, dropped = run("tasmota", "tele/x/SENSOR", payload)
    assert points[0].time_ns is None
    assert dropped == {"unsynchronized_clock": 1}


def test_tasmota_state_flattened() -> None:
    payload = json.dumps(
        {
            "Time": "2024-03-05T14:22:10",
            "Uptime": "0T01:02:03",
            "UptimeSec": 3723,
            "Heap": 25,
            "LoadAvg": 19,
            "POWER": "OFF",
            "Wifi": {"AP": 1, "SSId": "lab", "RSSI": 70, "Signal": -65},
        }
    )
    (point,) = run("tasmota", "tele/lab-plug/STATE", payload, strings="ignore")[0]
    assert point.fields == {
        "UptimeSec": 3723.0,
        "Heap": 25.0,
        "LoadAvg": 19.0,
        "POWER": False,
        "Wifi_AP": 1.0,
        "Wifi_RSSI": 70.0,
        "Wifi_Signal": -65.0,
    }
    assert point.time_ns == 1_709_648_530_000_000_000


def test_tasmota_status_replies_unwrapped() -> None:
    payload = (
        '{"StatusSNS":{"Time":"2024-03-05T14:22:10","SHT3X":{"Temperature":20.5}}}'
    )
    points, _ = run("tasmota", "stat/x/STATUS10", payload)
    assert points[0].fields == {"Temperature": 20.5}
    assert points[0].tags["sensor"] == "SHT3X"


def test_tasmota_power_and_lwt_plain_values() -> None:
    assert run("tasmota", "stat/x/POWER2", "ON")[0][0].fields == {"POWER2": True}
    assert run("tasmota", "tele/x/LWT", "Offline")[0][0].fields == {"online": False}


def test_tasmota_commands_and_other_topics_ignored() -> None:
    assert run("tasmota", "cmnd/x/POWER", "TOGGLE") == ([], {"ignored_topic": 1})
    assert run("tasmota", "tele/x/INFO1", "{}") == ([], {"ignored_topic": 1})


def test_tasmota_bad_payloads() -> None:
    assert rejected("tasmota", "tele/x/SENSOR", b"[1]") == "json_not_object"
    assert (
        rejected("tasmota", "tele/x/SENSOR", b'{"Time":"now","A":{"T":1}}')
        == "invalid_timestamp"
    )
    assert rejected("tasmota", "tele/x/LWT", b"Maybe") == "invalid_bool"
    assert (
        rejected("tasmota", "tele/x/SENSOR", b'{"Time":"2024-03-05T14:22:10"}')
        == "no_fields"
    )


# Zigbee2MQTT


Z2M_STATE = json.dumps(
    {
        "battery": 97,
        "humidity": 45.1,
        "linkquality": 120,
        "temperature": 21.8,
        "voltage": 3000,
        "state": "ON",
        "contact": False,
        "action": "",
        "color": {"x": 0.3, "y": 0.32},
        "update": {"state": "idle", "installed_version": 123},
        "last_seen": "2024-03-05T14:22:10.123+01:00",
    }
)


def test_zigbee2mqtt_device_state() -> None:
    (point,), dropped = run("zigbee2mqtt", "zigbee2mqtt/lab/fridge sensor", Z2M_STATE)
    assert point.tags == {"site": "lab", "device": "lab/fridge sensor"}
    assert point.fields == {
        "battery": 97.0,
        "humidity": 45.1,
        "linkquality": 120.0,
        "temperature": 21.8,
        "voltage": 3000.0,
        "state": True,
        "contact": False,
        "action": "",
        "color_x": 0.3,
        "color_y": 0.32,
        "update_state": "idle",
        "update_installed_version": 123.0,
    }
    assert point.time_ns == 1_709_644_930_123_000_000
    assert dropped == {}


def test_zigbee2mqtt_options() -> None:
    (point,), _ = run(
        "zigbee2mqtt",
        "z2m/hall",
        Z2M_STATE,
        base_topic="z2m",
        types={"linkquality": "int"},
        exclude=["update", "color"],
        last_seen="ignore",
        strings="ignore",
    )
    assert point.fields["linkquality"] == 120
    assert "update_state" not in point.fields
    assert "color_x" not in point.fields
    assert "action" not in point.fields
    assert point.time_ns is None


def test_zigbee2mqtt_last_seen_epoch_ms() -> None:
    (point,), _ = run(
        "zigbee2mqtt", "zigbee2mqtt/x", '{"t":1,"last_seen":1709644930123}'
    )
    assert point.time_ns == 1_709_644_930_123_000_000


def test_zigbee2mqtt_availability() -> None:
    topic = "zigbee2mqtt/lab/fridge sensor/availability"
    assert run("zigbee2mqtt", topic, '{"state":"online"}') == ([], {"availability": 1})
    (point,), _ = run("zigbee2mqtt", topic, '{"state":"offline"}', availability="field")
    assert point.fields == {"available": False}
    assert point.tags["device"] == "lab/fridge sensor"
    (point,), _ = run("zigbee2mqtt", topic, "online", availability="field")
    assert point.fields == {"available": True}


def test_zigbee2mqtt_bridge_and_commands_ignored() -> None:
    assert run("zigbee2mqtt", "zigbee2mqtt/bridge/state", '{"state":"online"}')[1] == {
        "ignored_topic": 1
    }
    assert run("zigbee2mqtt", "zigbee2mqtt/lamp/set", '{"state":"ON"}')[1] == {
        "ignored_topic": 1
    }


def test_zigbee2mqtt_attribute_output() -> None:
    (point,), _ = run("zigbee2mqtt", "zigbee2mqtt/lamp/state", "ON")
    assert point.fields == {"state": True}
    assert point.tags["device"] == "lamp"
    (point,), _ = run("zigbee2mqtt", "zigbee2mqtt/th/temperature", "21.5")
    assert point.fields == {"temperature": 21.5}


def test_zigbee2mqtt_bad_payloads() -> None:
    assert rejected("zigbee2mqtt", "zigbee2mqtt/x", b'{"t":') == "json_decode_error"
    assert rejected("zigbee2mqtt", "zigbee2mqtt/x", b"21") == "json_decode_error"
    assert rejected("zigbee2mqtt", "zigbee2mqtt/x", b'{"last_seen":"later","t":1}') == (
        "invalid_timestamp"
    )


# Shelly Gen2+


SHELLY_STATUS = json.dumps(
    {
        "src": "shellyplus1pm-a8032ab12345",
        "dst": "shellyplus1pm-a8032ab12345/events",
        "method": "NotifyStatus",
        "params": {
            "ts": 1709644930.47,
            "switch:0": {
                "id": 0,
                "apower": 12.5,
                "voltage": 229.8,
                "output": True,
                "aenergy": {"total": 1234.567, "by_minute": [210.4, 208.1, 209.9]},
                "temperature": {"tC": 41.2, "tF": 106.2},
            },
            "temperature:0": {"id": 0, "tC": 21.5, "tF": 70.7},
        },
    }
)


def test_shelly_notify_status_one_point_per_component() -> None:
    points, _ = run("shelly", "shellyplus1pm-a8032ab12345/events/rpc", SHELLY_STATUS)
    switch, temperature = points
    assert switch.tags == {
        "site": "lab",
        "component": "switch",
        "component_id": "0",
        "device": "shellyplus1pm-a8032ab12345",
    }
    assert switch.fields == {
        "apower": 12.5,
        "voltage": 229.8,
        "output": True,
        "aenergy_total": 1234.567,
        "aenergy_by_minute_0": 210.4,
        "aenergy_by_minute_1": 208.1,
        "aenergy_by_minute_2": 209.9,
        "temperature_tC": 41.2,
        "temperature_tF": 106.2,
    }
    assert temperature.tags["component"] == "temperature"
    assert temperature.fields == {"tC": 21.5, "tF": 70.7}
    assert switch.time_ns == temperature.time_ns == 1_709_644_930_470_000_000


def test_shelly_full_status_filtered_by_component() -> None:
    payload = json.dumps(
        {
            "src": "shellyhtg3-1",
            "method": "NotifyFullStatus",
            "params": {
                "ts": 1709644930,
                "ble": {},
                "cloud": {"connected": True},
                "humidity:0": {"id": 0, "rh": 45.2},
                "sys": {"mac": "A8032AB12345", "uptime": 3600, "ram_free": 100000},
                "wifi": {"sta_ip": "192.0.2.10", "status": "got ip", "rssi": -61},
            },
        }
    )
    points, _ = run(
        "shelly", "shellyhtg3-1/events/rpc", payload, components=["humidity", "wifi"]
    )
    assert [p.tags["component"] for p in points] == ["humidity", "wifi"]
    assert points[1].fields == {
        "sta_ip": "192.0.2.10",
        "status": "got ip",
        "rssi": -61.0,
    }
    assert "component_id" not in points[1].tags


def test_shelly_status_and_online_topics() -> None:
    (point,), _ = run(
        "shelly", "shellyplus1pm-x/status/switch:0", '{"id":0,"apower":5}'
    )
    assert point.fields == {"apower": 5.0}
    assert point.tags["component_id"] == "0"
    assert point.time_ns is None
    (point,), _ = run("shelly", "shellyplus1pm-x/online", "false")
    assert point.fields == {"online": False}


def test_shelly_events_and_other_traffic_ignored() -> None:
    event = '{"src":"s1","method":"NotifyEvent","params":{"ts":1709644930,"events":[]}}'
    assert run("shelly", "s1/events/rpc", event) == ([], {"ignored_notification": 1})
    assert run("shelly", "s1/rpc", "{}") == ([], {"ignored_topic": 1})
    empty = '{"src":"s1","method":"NotifyStatus","params":{"ts":1709644930,"ble":{}}}'
    assert run("shelly", "s1/events/rpc", empty) == ([], {"no_fields": 1})


def test_shelly_bad_payloads() -> None:
    assert rejected("shelly", "s1/events/rpc", b"[]") == "json_not_object"
    bad_params = b'{"method":"NotifyStatus","params":5}'
    assert rejected("shelly", "s1/events/rpc", bad_params) == "json_not_object"
    bad_ts = b'{"method":"NotifyStatus","params":{"ts":1709644930123,"a:0":{"x":1}}}'
    assert rejected("shelly", "s1/events/rpc", bad_ts) == "timestamp_unit_mismatch"


# ESPHome


def test_esphome_sensor_states() -> None:
    (point,), _ = run("esphome", "lab-node/sensor/room_temperature/state", "21.5")
    assert point.tags == {"site": "lab", "node": "lab-node", "component": "sensor"}
    assert point.fields == {"room_temperature": 21.5}
    (point,), _ = run("esphome", "lab-node/binary_sensor/door/state", "ON")
    assert point.fields == {"door": True}
    (point,), _ = run("esphome", "lab-node/switch/relay/state", "OFF")
    assert point.fields == {"relay": False}
    (point,), _ = run("esphome", "lab-node/text_sensor/ip/state", "192.0.2.7")
    assert point.fields == {"ip": "192.0.2.7"}


def test_esphome_sensor_without_reading_is_nan() -> None:
    (point,), _ = run("esphome", "lab-node/sensor/co2/state", "nan")
    value = point.fields["co2"]
    assert isinstance(value, float)
    assert value != value


def test_esphome_json_light_and_climate_attributes() -> None:
    light = '{"state":"ON","brightness":255,"color_mode":"brightness"}'
    (point,), _ = run("esphome", "lab-node/light/desk/state", light)
    assert point.fields == {
        "desk_state": True,
        "desk_brightness": 255.0,
        "desk_color_mode": "brightness",
    }
    topic = "lab-node/climate/incubator/current_temperature/state"
    (point,), _ = run("esphome", topic, "36.9")
    assert point.tags["component"] == "climate"
    assert point.tags["node"] == "lab-node"
    assert point.fields == {"incubator_current_temperature": 36.9}


def test_esphome_custom_prefix_with_slashes() -> None:
    (point,), _ = run("esphome", "labs/b2/node7/sensor/rh/state", "55")
    assert point.tags["node"] == "labs/b2/node7"


def test_esphome_status_and_other_topics() -> None:
    assert run("esphome", "lab-node/status", "online") == ([], {"availability": 1})
    (point,), _ = run("esphome", "lab-node/status", "offline", availability="field")
    assert point.fields == {"online": False}
    assert run("esphome", "lab-node/debug", "[D][sensor]: x") == (
        [],
        {"ignored_topic": 1},
    )
    assert run("esphome", "lab-node/switch/relay/command", "ON") == (
        [],
        {"ignored_topic": 1},
    )


def test_esphome_bad_payloads() -> None:
    assert rejected("esphome", "n/sensor/t/state", b"warm") == "invalid_number"
    assert rejected("esphome", "n/binary_sensor/d/state", b"maybe") == "invalid_bool"
    assert rejected("esphome", "n/sensor/t/state", b"") == "empty_payload"


# The Things Stack v3


def ttn_uplink(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "end_device_ids": {
            "device_id": "eui-70b3d57ed0056a2b",
            "application_ids": {"application_id": "lab-sensors"},
            "dev_eui": "70B3D57ED0056A2B",
            "dev_addr": "260B1234",
        },
        "correlation_ids": ["as:up:01HR5Z0000000000000000000"],
        "received_at": "2024-03-05T13:22:10.154339869Z",
        "uplink_message": {
            "session_key_id": "AY3z7Q==",
            "f_port": 2,
            "f_cnt": 1234,
            "frm_payload": "CGQBLA==",
            "decoded_payload": {
                "temperature": 21.5,
                "humidity": 45,
                "battery": {"volts": 3.6},
            },
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "gw-roof"},
                    "rssi": -97,
                    "channel_rssi": -97,
                    "snr": 3.5,
                },
                {
                    "gateway_ids": {"gateway_id": "gw-lab"},
                    "rssi": -71,
                    "channel_rssi": -71,
                    "snr": 9.25,
                },
            ],
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
                "frequency": "868100000",
            },
            "received_at": "2024-03-05T13:22:10.101Z",
            "consumed_airtime": "0.056576s",
        },
    }
    message["uplink_message"].update(changes)
    return message


def test_ttn_uplink() -> None:
    (point,), _ = run(
        "ttn",
        "v3/lab-sensors@ttn/devices/eui-70b3d57ed0056a2b/up",
        json.dumps(ttn_uplink()),
    )
    assert point.tags == {
        "site": "lab",
        "device": "eui-70b3d57ed0056a2b",
        "application": "lab-sensors",
    }
    assert point.fields == {
        "temperature": 21.5,
        "humidity": 45.0,
        "battery_volts": 3.6,
        "f_cnt": 1234,
        "f_port": 2,
        "gateways": 2,
        "rssi": -71.0,
        "snr": 9.25,
        "spreading_factor": 7,
        "frequency": 868_100_000,
    }
    assert point.time_ns == 1_709_644_930_154_339_869


def test_ttn_radio_options() -> None:
    message = json.dumps(ttn_uplink(decoded_payload={"rssi": 1}))
    assert rejected("ttn", "v3/a/devices/b/up", message.encode()) == "duplicate_field"
    (point,), _ = run("ttn", "v3/a/devices/b/up", message, radio_prefix="lora_")
    assert point.fields["rssi"] == 1.0
    assert point.fields["lora_rssi"] == -71.0
    (point,), _ = run(
        "ttn",
        "v3/a/devices/b/up",
        json.dumps(ttn_uplink()),
        radio=False,
        time="arrival",
    )
    assert set(point.fields) == {"temperature", "humidity", "battery_volts"}
    assert point.time_ns is None


def test_ttn_first_frame_counter_omitted() -> None:
    message = ttn_uplink()
    del message["uplink_message"]["f_cnt"]
    (point,), _ = run("ttn", "v3/a/devices/b/up", json.dumps(message))
    assert point.fields["f_cnt"] == 0


def test_ttn_other_messages_ignored() -> None:
    join = {
        "end_device_ids": {"device_id": "d"},
        "join_accept": {"session_key_id": "x"},
    }
    assert run("ttn", "v3/a/devices/d/join", json.dumps(join)) == (
        [],
        {"ignored_message": 1},
    )


def test_ttn_bad_payloads() -> None:
    message = ttn_uplink(decoded_payload=[1, 2])
    assert (
        rejected("ttn", "v3/a/devices/b/up", json.dumps(message).encode())
        == "json_not_object"
    )
    message = ttn_uplink(f_cnt=1.5)
    assert (
        rejected("ttn", "v3/a/devices/b/up", json.dumps(message).encode())
        == "fractional_int"
    )
    bad_time = ttn_uplink()
    bad_time["received_at"] = "2024-13-05T13:22:10Z"
    assert (
        rejected("ttn", "v3/a/devices/b/up", json.dumps(bad_time).encode())
        == "invalid_timestamp"
    )


# Home Assistant statestream


def test_homeassistant_numeric_and_binary_states() -> None:
    (point,), _ = run(
        "homeassistant", "homeassistant/sensor/lab_temperature/state", "21.5"
    )
    assert point.tags == {
        "site": "lab",
        "domain": "sensor",
        "entity_id": "sensor.lab_temperature",
    }
    assert point.fields == {"value": 21.5}
    (point,), _ = run("homeassistant", "homeassistant/binary_sensor/door/state", "on")
    assert point.fields == {"value": 1.0}
    (point,), _ = run(
        "homeassistant", "homeassistant/device_tracker/phone/state", "not_home"
    )
    assert point.fields == {"value": 0.0}
    (point,), _ = run("homeassistant", "homeassistant/climate/incubator/state", "heat")
    assert point.fields == {"state": "heat"}


def test_homeassistant_json_state() -> None:
    (point,), _ = run("homeassistant", "ha/sensor/multi/state", '{"t":21.5,"ok":true}')
    assert point.fields == {"t": 21.5, "ok": True}


def test_homeassistant_unavailable_states_counted() -> None:
    for state in ("unavailable", "unknown"):
        assert run("homeassistant", "ha/sensor/x/state", state) == (
            [],
            {"state_unavailable": 1},
        )


def test_homeassistant_attributes() -> None:
    topic = "homeassistant/sensor/lab_temperature/unit_of_measurement"
    assert run("homeassistant", topic, '"\\u00b0C"') == ([], {"ignored_attribute": 1})
    (point,), _ = run("homeassistant", topic, '"\\u00b0C"', attributes="fields")
    assert point.fields == {"unit_of_measurement": "°C"}
    topic = "homeassistant/light/desk/rgb_color"
    (point,), _ = run("homeassistant", topic, "[255, 128, 0]", attributes="fields")
    assert point.fields == {
        "rgb_color_0": 255.0,
        "rgb_color_1": 128.0,
        "rgb_color_2": 0.0,
    }


def test_homeassistant_bad_input() -> None:
    assert rejected("homeassistant", "state", b"1") == "unsupported_topic"
    assert rejected("homeassistant", "ha/sensor/x/state", b"\xff") == "invalid_utf8"
    assert rejected(
        "homeassistant", "ha/sensor/x/friendly_name", b"Lab", attributes="fields"
    ) == ("json_decode_error")


# Presets in a configuration


def test_presets_work_through_the_pipeline() -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "tele/{device}/SENSOR",
                    "measurement": "tasmota",
                    "format": "tasmota",
                },
                {
                    "topic": "zigbee2mqtt/#",
                    "measurement": "zigbee",
                    "format": "zigbee2mqtt",
                },
                {"topic": "+/events/rpc", "measurement": "shelly", "format": "shelly"},
            ]
        }
    )
    pipeline = Pipeline(config)
    outcome = pipeline.process(
        "tele/plug1/SENSOR",
        b'{"Time":"2024-03-05T14:22:10","SI7021":{"Temperature":20}}',
        ARRIVAL,
    )
    assert outcome.lines == [
        "tasmota,device=plug1,sensor=SI7021 Temperature=20 1709648530000000000"
    ]
    outcome = pipeline.process(
        "zigbee2mqtt/th1", b'{"temperature":21,"linkquality":80}', ARRIVAL
    )
    assert outcome.lines == [
        f"zigbee,device=th1 linkquality=80,temperature=21 {ARRIVAL}"
    ]
    outcome = pipeline.process("s1/events/rpc", SHELLY_STATUS.encode(), ARRIVAL)
    assert len(outcome.lines) == 2
    assert outcome.lines[1] == (
        "shelly,component=temperature,component_id=0,device=shellyplus1pm-a8032ab12345 "
        "tC=21.5,tF=70.7 1709644930470000000"
    )


def test_tasmota_naive_time_as_utc_counted() -> None:
    points, dropped = run("tasmota", "tele/x/SENSOR", TASMOTA_SENSOR)
    assert {p.time_ns for p in points} == {1_709_648_530_000_000_000}
    assert dropped == {"naive_time_as_utc": 1}


def test_tasmota_zone_set_not_counted() -> None:
    for zone in ("Europe/Berlin", "UTC"):
        _, dropped = run("tasmota", "tele/x/SENSOR", TASMOTA_SENSOR, timezone=zone)
        assert dropped == {}, zone


def test_tasmota_time_with_offset_not_counted() -> None:
    payload = '{"Time":"2024-03-05T14:22:10+01:00","BME280":{"Pressure":1013.2}}'
    _, dropped = run("tasmota", "tele/x/SENSOR", payload)
    assert dropped == {}


def test_tasmota_timezone_description_says_local() -> None:
    field = registry()["tasmota"].options_model.model_fields["timezone"]
    assert field.description is not None
    assert "local time" in field.description
    assert "set this to the device's zone" in field.description


def test_zigbee2mqtt_naive_last_seen_counted() -> None:
    payload = '{"temperature":21.5,"last_seen":"2024-03-05T14:22:10"}'
    points, dropped = run("zigbee2mqtt", "zigbee2mqtt/kitchen", payload)
    assert points[0].time_ns == 1_709_648_530_000_000_000
    assert dropped == {"naive_time_as_utc": 1}


def test_time_key_in_presets_rejected() -> None:
    cases = [
        ("tasmota", "tele/x/SENSOR", '{"AM2301":{"time":1}}', "rename the key"),
        ("zigbee2mqtt", "zigbee2mqtt/x", '{"time":1}', "exclude option"),
        ("esphome", "esphome/sensor/time/state", "21.5", "rename it"),
    ]
    for name, topic, payload, fix in cases:
        with pytest.raises(DecodeError) as caught:
            run(name, topic, payload)
        assert caught.value.reason == "reserved_key", name
        assert fix in caught.value.detail, name

"""The Sparkplug B payload schema, built as a protobuf descriptor at import.

This is the message layout of the Eclipse Sparkplug B specification
(proto2, package org.eclipse.tahu.protobuf), written out here field by field
so that no generated code or protoc run is needed. Extension fields are left
out: the parser keeps them as unknown fields, which the decoder ignores.
The classes live in a private descriptor pool, so that another Sparkplug
schema loaded in the same process can't clash with them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL = _F.LABEL_OPTIONAL
_REPEATED = _F.LABEL_REPEATED
_SCALARS = {
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}

# (name, number, type, repeated, in the `value` oneof); a type that is not a
# scalar names a message of the schema.
_Field = tuple[str, int, str, bool, bool]

_MESSAGES: dict[str, list[_Field]] = {
    "Payload.Template.Parameter": [
        ("name", 1, "string", False, False),
        ("type", 2, "uint32", False, False),
        ("int_value", 3, "uint32", False, True),
        ("long_value", 4, "uint64", False, True),
        ("float_value", 5, "float", False, True),
        ("double_value", 6, "double", False, True),
        ("boolean_value", 7, "bool", False, True),
        ("string_value", 8, "string", False, True),
    ],
    "Payload.Template": [
        ("version", 1, "string", False, False),
        ("metrics", 2, "Payload.Metric", True, False),
        ("parameters", 3, "Payload.Template.Parameter", True, False),
        ("template_ref", 4, "string", False, False),
        ("is_definition", 5, "bool", False, False),
    ],
    "Payload.DataSet.DataSetValue": [
        ("int_value", 1, "uint32", False, True),
        ("long_value", 2, "uint64", False, True),
        ("float_value", 3, "float", False, True),
        ("double_value", 4, "double", False, True),
        ("boolean_value", 5, "bool", False, True),
        ("string_value", 6, "string", False, True),
    ],
    "Payload.DataSet.Row": [
        ("elements", 1, "Payload.DataSet.DataSetValue", True, False),
    ],
    "Payload.DataSet": [
        ("num_of_columns", 1, "uint64", False, False),
        ("columns", 2, "string", True, False),
        ("types", 3, "uint32", True, False),
        ("rows", 4, "Payload.DataSet.Row", True, False),
    ],
    "Payload.PropertyValue": [
        ("type", 1, "uint32", False, False),
        ("is_null", 2, "bool", False, False),
        ("int_value", 3, "uint32", False, True),
        ("long_value", 4, "uint64", False, True),
        ("float_value", 5, "float", False, True),
        ("double_value", 6, "double", False, True),
        ("boolean_value", 7, "bool", False, True),
        ("string_value", 8, "string", False, True),
        ("propertyset_value", 9, "Payload.PropertySet", False, True),
        ("propertysets_value", 10, "Payload.PropertySetList", False, True),
    ],
    "Payload.PropertySet": [
        ("keys", 1, "string", True, False),
        ("values", 2, "Payload.PropertyValue", True, False),
    ],
    "Payload.PropertySetList": [
        ("propertyset", 1, "Payload.PropertySet", True, False),
    ],
    "Payload.MetaData": [
        ("is_multi_part", 1, "bool", False, False),
        ("content_type", 2, "string", False, False),
        ("size", 3, "uint64", False, False),
        ("seq", 4, "uint64", False, False),
        ("file_name", 5, "string", False, False),
        ("file_type", 6, "string", False, False),
        ("md5", 7, "string", False, False),
        ("description", 8, "string", False, False),
    ],
    "Payload.Metric": [
        ("name", 1, "string", False, False),
        ("alias", 2, "uint64", False, False),
        ("timestamp", 3, "uint64", False, False),
        ("datatype", 4, "uint32", False, False),
        ("is_historical", 5, "bool", False, False),
        ("is_transient", 6, "bool", False, False),
        ("is_null", 7, "bool", False, False),
        ("metadata", 8, "Payload.MetaData", False, False),
        ("properties", 9, "Payload.PropertySet", False, False),
        ("int_value", 10, "uint32", False, True),
        ("long_value", 11, "uint64", False, True),
        ("float_value", 12, "float", False, True),
        ("double_value", 13, "double", False, True),
        ("boolean_value", 14, "bool", False, True),
        ("string_value", 15, "string", False, True),
        ("bytes_value", 16, "bytes", False, True),
        ("dataset_value", 17, "Payload.DataSet", False, True),
        ("template_value", 18, "Payload.Template", False, True),
    ],
    "Payload": [
        ("timestamp", 1, "uint64", False, False),
        ("metrics", 2, "Payload.Metric", True, False),
        ("seq", 3, "uint64", False, False),
        ("uuid", 4, "string", False, False),
        ("body", 5, "bytes", False, False),
    ],
}


def _message_proto(path: str) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=path.rsplit(".", 1)[-1])
    fields = _MESSAGES[path]
    if any(in_oneof for *_, in_oneof in fields):
        message.oneof_decl.add(name="value")
    for name, number, type_name, repeated, in_oneof in fields:
        field = message.field.add(
            name=name,
            number=number,
            label=_REPEATED if repeated else _OPTIONAL,
        )
        if type_name in _SCALARS:
            field.type = _SCALARS[type_name]
        else:
            field.type = _F.TYPE_MESSAGE
            field.type_name = f".{PACKAGE}.{type_name}"
        if in_oneof:
            field.oneof_index = 0
    for child in _MESSAGES:
        if child.rsplit(".", 1)[0] == path and child != path:
            message.nested_type.append(_message_proto(child))
    return message


def _build() -> Any:
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="labdock/sparkplug_b.proto", package=PACKAGE, syntax="proto2"
    )
    file_proto.message_type.append(_message_proto("Payload"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{PACKAGE}.Payload")
    )


# The message class of a Sparkplug B payload (Payload.FromString(data)).
Payload: Any = _build()

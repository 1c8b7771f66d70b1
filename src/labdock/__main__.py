from labdock.cli import main

main()

from vid2reid.cli import main

main()

from alina.cli import main

main()

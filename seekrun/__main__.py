from seekrun.cli import main

main()

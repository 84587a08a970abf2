from quacknet.loader.run import main

main()

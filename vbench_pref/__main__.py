from vbench_pref.cli import main

main()

from igor.cli import main

raise SystemExit(main())

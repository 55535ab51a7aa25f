from adamesh.cli import main

raise SystemExit(main())

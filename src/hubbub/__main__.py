from hubbub.cli import main

raise SystemExit(main())

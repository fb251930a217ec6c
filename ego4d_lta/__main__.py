from ego4d_lta.cli import main

raise SystemExit(main())

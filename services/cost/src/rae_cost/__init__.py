"""RAE cost service: usage accounting, budgets and governance (port 8005)."""

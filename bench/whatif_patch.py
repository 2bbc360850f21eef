#!/usr/bin/env python3
"""Patches a *copy* of src/store/mod.rs for bench/whatif.sh (never the repository's own file).

Each change is switched on at run time by an environment variable, so one binary runs every
variant. A change whose pattern is gone (because src/ already has it, or was rewritten) is left
out and reported. Prints the applied switches on stdout.

  QP_TEMPMEM   add `PRAGMA temp_store = MEMORY` to the connection set-up
  QP_LITLIMIT  write the claim query's `LIMIT ?3` as a literal
"""

import sys

path = sys.argv[1]
s = open(path).read()
applied = []

pragmas = 'conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;'
if "temp_store" in s:
    print("whatif: src/ already sets temp_store; QP_TEMPMEM left out", file=sys.stderr)
elif pragmas in s:
    s = s.replace(
        pragmas,
        'conn.execute_batch(&format!("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;{}", '
        'if std::env::var_os("QP_TEMPMEM").is_some() { " PRAGMA temp_store = MEMORY;" } else { "" }))?;',
    )
    applied.append("QP_TEMPMEM")
else:
    print("whatif: connection pragmas not found; QP_TEMPMEM left out", file=sys.stderr)

limit = "ORDER BY priority DESC, run_at, seq LIMIT ?3) \\"
returning = '         RETURNING {JOB_COLUMNS}"\n    );'
if limit in s and returning in s:
    s = s.replace(limit, "ORDER BY priority DESC, run_at, seq LIMIT {lim}) \\")
    s = s.replace(
        returning,
        '         RETURNING {JOB_COLUMNS}",\n'
        '        lim = if std::env::var_os("QP_LITLIMIT").is_some() { limit.to_string() } else { "?3".to_string() }\n'
        "    );",
        1,
    )
    applied.append("QP_LITLIMIT")
else:
    print("whatif: the claim's `LIMIT ?3` not found; QP_LITLIMIT left out", file=sys.stderr)

open(path, "w").write(s)
print(" ".join(applied))

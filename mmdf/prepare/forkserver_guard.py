"""Imported by the workers' fork server only (listed in ``runner.WORKER_PRELOAD``): it dies with `mmdf prepare`.

The fork server is the workers' parent, and every worker keeps it alive
(multiprocessing hands each child the server's "alive" pipe), while the
workers themselves wait forever on a task queue they hold both ends of: a
killed `mmdf prepare` would leave the server and its workers running,
holding gigabytes. With this, the kernel kills the server when `mmdf prepare`
dies, and each worker when the server dies (``init_worker`` asks the same).
Importing it anywhere else would tie that process to its own parent. (Linux ties
the signal to the thread that started the server: the thread that first starts
workers, the main thread in mmdf; if it were a thread that exits, the server
would be restarted for the next pool.)
"""

import os

from mmdf.prepare.clip import die_with_parent

die_with_parent(os.getppid())

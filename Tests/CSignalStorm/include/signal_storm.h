#ifndef CKPT_SIGNAL_STORM_H
#define CKPT_SIGNAL_STORM_H

/// Sends `signal_number` to every thread of this process but the caller (Linux: each task in
/// /proc/self/task, by tgkill; elsewhere to the process once). Returns the number of signals sent.
int signal_storm_send(int signal_number);

/// Installs a handler for `signal_number` that does nothing, without SA_RESTART: a blocking system
/// call the signal interrupts returns EINTR instead of resuming.
void signal_storm_install_interrupting_handler(int signal_number);

#endif

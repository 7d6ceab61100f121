package main

// defaultServerNice is how much nicer than the driver a server started by
// bench or calibrate runs (proc.Options.Nice; Linux only). On a machine that
// the server saturates, the driver's timers and receive loops otherwise wait
// behind the server's threads: its sends go out late and its receive
// timestamps come late, so the measurement, not the server, degrades (on a
// 2-core machine the latency scenario flagged the driver with 0.75 of a core
// in use, and did not at nice +10). Priority only decides who waits when both
// want a CPU: an idle driver leaves every cycle to the server.
const defaultServerNice = 10

//! Standard output that never panics: `println!` panics when stdout is a closed pipe
//! (`sagactl status | head -3`), and the launcher must go on (or end normally) instead.

use std::io::Write as _;

/// Prints a line like `println!`, dropping it silently when stdout cannot take it.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::write_line(format_args!($($arg)*)) };
}

/// Writes one line to stdout. A reader that went away (a closed pipe) or a full disk is not
/// worth failing a command over: the line is lost, the command carries on and exits normally.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

//! Progress bars on stderr for the long-running commands (`load`, `audit --wait-secs`, `bench`):
//! drawn only for a person watching, never into a pipe or a `--json` run.

use std::{io::IsTerminal as _, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps, or a hidden one when `visible` is false or stderr is not a terminal.
/// `counted` shows `pos/len` (orders); without it only the bar (seconds of a timed run).
pub fn progress_bar(len: u64, counted: bool, visible: bool) -> ProgressBar {
    if !visible || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = if counted {
        "[{elapsed_precise}] {wide_bar} {pos}/{len} {msg}"
    } else {
        "[{elapsed_precise}] {wide_bar} {msg}"
    };
    // The templates are constants; the default style is a fine fallback should one be refused.
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style);
    // Redraws the elapsed time while nothing else changes (a long drain, a long wait).
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

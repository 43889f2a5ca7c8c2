//! Reading a PIN from the terminal without echo, with the terminal restored on every way out:
//! normal return, error, panic (a drop guard), and a signal such as Ctrl-C while the prompt waits
//! (a signal thread that restores the terminal and then lets the signal end the program as it
//! would have).
//!
//! Everything goes through safe APIs (`rustix` for termios, `signal-hook` for signals): the crate
//! forbids `unsafe`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::sync::{Mutex, Once};

use rustix::termios::{self, LocalModes, OptionalActions, Termios};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

/// The terminal and its settings from before the echo was turned off, while it is off.
/// One owner: the guard puts it here and takes it back; the signal thread takes it when a signal
/// arrives first.
static ECHO_OFF: Mutex<Option<(File, Termios)>> = Mutex::new(None);

fn restore_saved() {
    let saved = ECHO_OFF.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((tty, termios)) = saved {
        let _ = termios::tcsetattr(&tty, OptionalActions::Now, &termios);
    }
}

/// Starts (once per process) the thread that restores the terminal when a terminating signal
/// arrives, then ends the program the way that signal would have.
fn watch_signals() {
    static START: Once = Once::new();
    START.call_once(|| {
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                restore_saved();
                // A line break, so that the shell prompt does not follow ours on the same line.
                eprintln!();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                // Only if the default action did not end the process (it always does for these).
                std::process::exit(128 + signal);
            }
        });
    });
}

/// Echo off while it lives; restores the saved settings when dropped.
struct EchoOff;

impl EchoOff {
    fn new(tty: &File) -> io::Result<EchoOff> {
        let saved = termios::tcgetattr(tty)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // The Enter key still moves to the next line.
        quiet.local_modes.insert(LocalModes::ECHONL);
        watch_signals();
        *ECHO_OFF.lock().unwrap_or_else(|e| e.into_inner()) = Some((tty.try_clone()?, saved));
        if let Err(e) = termios::tcsetattr(tty, OptionalActions::Now, &quiet) {
            restore_saved();
            return Err(e.into());
        }
        Ok(EchoOff)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        restore_saved();
    }
}

/// Why no PIN could be read from the terminal.
pub enum TtyError {
    /// There is no terminal to ask on.
    NoTerminal,
    Io(io::Error),
}

/// Shows `prompt` on the controlling terminal and reads one line with echo off. Echo goes off
/// before the prompt appears, so nothing typed after it is ever shown.
pub fn read_line_no_echo(prompt: &str, line: &mut String) -> Result<(), TtyError> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| TtyError::NoTerminal)?;
    let _echo_off = EchoOff::new(&tty).map_err(|_| TtyError::NoTerminal)?;
    let mut out = &tty;
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    BufReader::new(&tty)
        .read_line(line)
        .map(|_| ())
        .map_err(TtyError::Io)
}

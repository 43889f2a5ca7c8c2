//! The history files: where they live, appending one line, rotation, reading back.
//!
//! `$XDG_STATE_HOME/jpki-pkcs11/history.jsonl` (default `~/.local/state/…`), one JSON object
//! per line. The directory is created 0700 and the file 0600; a file found with looser
//! permissions is tightened. Each entry is one `write` on a file opened with `O_APPEND`, so
//! the lines of several processes never interleave. When the file passes [`MAX_FILE_BYTES`]
//! it becomes `history.1.jsonl` (the older `.1` becomes `.2`, the older `.2` is dropped): at
//! most [`KEPT_FILES`] × [`MAX_FILE_BYTES`] on disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Size at which the current file is rotated.
pub const MAX_FILE_BYTES: u64 = 512 * 1024;
/// Files kept: the current one and this many minus one rotated ones.
pub const KEPT_FILES: usize = 3;

const DIR: &str = "jpki-pkcs11";

/// The history directory from the environment (`XDG_STATE_HOME`, else `HOME/.local/state`).
/// `None` when neither gives an absolute path (then nothing is written).
pub fn default_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").and_then(abs) {
        return Some(p.join(DIR));
    }
    std::env::var_os("HOME")
        .and_then(abs)
        .map(|h| h.join(".local/state").join(DIR))
}

/// The file of generation `n` (0 is the current one) in `dir`.
pub fn file(dir: &Path, n: usize) -> PathBuf {
    if n == 0 {
        dir.join("history.jsonl")
    } else {
        dir.join(format!("history.{n}.jsonl"))
    }
}

/// Opens the file for appending, created 0600; never through a symlink (someone who can write
/// the directory must not redirect our writes).
fn open_append(path: &Path) -> io::Result<File> {
    // std adds O_CLOEXEC itself.
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Appends `line` (without its newline) to the history in `dir`, rotating first when the
/// current file is full.
pub fn append(dir: &Path, line: &str) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let current = file(dir, 0);
    let mut f = open_append(&current)?;
    if f.metadata()?.len() >= MAX_FILE_BYTES {
        rotate(dir, &f)?;
        f = open_append(&current)?;
    }
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    f.write_all(&bytes)
}

/// Shifts the generations by one. Another process may have rotated the file meanwhile: then
/// the path no longer names the file we hold and nothing is done. (Two processes passing that
/// check at the same instant can drop one generation early; the bound on disk holds either way,
/// and no lock is needed that could stall a card operation.)
fn rotate(dir: &Path, full: &File) -> io::Result<()> {
    let held = full.metadata()?;
    match fs::symlink_metadata(file(dir, 0)) {
        Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
        _ => return Ok(()),
    }
    for n in (1..KEPT_FILES).rev() {
        let from = file(dir, n - 1);
        if from.exists() {
            fs::rename(&from, file(dir, n))?;
        }
    }
    Ok(())
}

/// Every line of the history in `dir`, oldest first. Missing files are skipped.
pub fn read_lines(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for n in (0..KEPT_FILES).rev() {
        match fs::read_to_string(file(dir, n)) {
            Ok(text) => out.extend(text.lines().map(str::to_owned)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jpki-history-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn appends_with_private_modes_and_rotates_within_bound() {
        let dir = temp_dir("rotate").join("jpki-pkcs11");
        let line = "x".repeat(1000);
        let n = (KEPT_FILES as u64 + 2) * MAX_FILE_BYTES / 1001 + 10;
        for _ in 0..n {
            append(&dir, &line).expect("append");
        }
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let mut total = 0;
        for g in 0..KEPT_FILES {
            assert_eq!(mode(&file(&dir, g)), 0o600, "generation {g}");
            total += fs::metadata(file(&dir, g)).expect("meta").len();
        }
        assert!(!file(&dir, KEPT_FILES).exists());
        assert!(total <= KEPT_FILES as u64 * (MAX_FILE_BYTES + 1001));
        let lines = read_lines(&dir).expect("read");
        assert!(lines.iter().all(|l| l == &line));
        assert!(lines.len() as u64 >= 2 * MAX_FILE_BYTES / 1001);
        let _ = fs::remove_dir_all(dir.parent().expect("parent"));
    }

    #[test]
    fn tightens_a_loose_file_and_refuses_a_symlink() {
        let dir = temp_dir("modes");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(file(&dir, 0), "old\n").expect("write");
        fs::set_permissions(file(&dir, 0), fs::Permissions::from_mode(0o644)).expect("chmod");
        append(&dir, "new").expect("append");
        let meta = fs::metadata(file(&dir, 0)).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(read_lines(&dir).expect("read"), vec!["old", "new"]);

        let other = temp_dir("modes-link");
        fs::create_dir_all(&other).expect("mkdir");
        std::os::unix::fs::symlink(dir.join("elsewhere"), file(&other, 0)).expect("symlink");
        assert!(append(&other, "x").is_err());
        assert!(!dir.join("elsewhere").exists());
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&other);
    }
}

//! The end of a response, verified: after personal data is deleted, every
//! folder epitrace controls is scanned for **canary subjects** — raw phone
//! or card numbers the authority planted in the data — in every form they
//! could take at rest: the 16-byte pseudonym the producers made of them,
//! and the raw number itself, normalised or as given. Then the pseudonym
//! key is destroyed (crypto-shredding): any copy of a pseudonym left
//! elsewhere can no longer be linked to a person.
//!
//! The deletion itself (topics, changelogs, state folders) is the binary's
//! (`epitrace purge`); this module holds what can be tested on its own: the
//! canaries, the scan and the key's destruction.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use epitrace_feeds::{IdKind, Pseudonymizer};

use crate::ToolError;

/// One canary subject and the byte strings that would betray it.
pub struct Canary {
    /// Its position in the canary file (1-based line): how hits name it,
    /// never by its number.
    pub line: usize,
    needles: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Canary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canary")
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Reads canaries: one per line, a raw phone number, or `card NUMBER` for a
/// card; blank lines and `#` comments are skipped. Each is pseudonymised
/// with `pseudonyms` as the producers do.
///
/// # Errors
/// [`ToolError::Audit`] naming the line (never the number) of a number that
/// does not normalise, or when there is no canary at all.
pub fn canaries(text: &str, pseudonyms: &Pseudonymizer) -> Result<Vec<Canary>, ToolError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, raw) = match line.strip_prefix("card ") {
            Some(raw) => (IdKind::Card, raw.trim()),
            None => (
                IdKind::Msisdn,
                line.strip_prefix("phone ").unwrap_or(line).trim(),
            ),
        };
        let bad = |why: String| ToolError::Audit {
            reason: format!("canaries line {line_no}: {why}"),
        };
        let normalised = kind.normalise(raw).map_err(bad)?;
        let subject = pseudonyms.subject(kind, raw).map_err(bad)?;
        let mut needles = vec![
            subject.as_bytes().to_vec(),
            normalised.as_bytes().to_vec(),
            normalised.trim_start_matches('+').as_bytes().to_vec(),
            raw.as_bytes().to_vec(),
        ];
        needles.sort();
        needles.dedup();
        out.push(Canary {
            line: line_no,
            needles,
        });
    }
    if out.is_empty() {
        return Err(ToolError::Audit {
            reason: "no canary in the canary file".into(),
        });
    }
    Ok(out)
}

/// A canary found at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The file.
    pub path: PathBuf,
    /// The canary's line in the canary file.
    pub canary: usize,
}

/// What a scan looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Every (file, canary) found, in path order.
    pub hits: Vec<Hit>,
}

/// Bytes read at a time; consecutive chunks overlap by the longest needle
/// so that no match is cut in two.
const CHUNK: usize = 8 << 20;

/// Scans every regular file under `dirs` (recursively; symbolic links are
/// not followed; missing folders are skipped) for every canary.
///
/// # Errors
/// [`ToolError::Audit`] when a folder or file cannot be read (a scan that
/// cannot look everywhere proves nothing).
pub fn scan(dirs: &[PathBuf], canaries: &[Canary]) -> Result<Scan, ToolError> {
    // One automaton for every needle of every canary: each file is read
    // once.
    let owners: Vec<usize> = canaries
        .iter()
        .flat_map(|c| c.needles.iter().map(move |_| c.line))
        .collect();
    let automaton =
        AhoCorasick::new(canaries.iter().flat_map(|c| c.needles.iter())).map_err(|e| {
            ToolError::Audit {
                reason: format!("building the canary search: {e}"),
            }
        })?;
    let longest = canaries
        .iter()
        .flat_map(|c| c.needles.iter().map(Vec::len))
        .max()
        .unwrap_or(0);
    let mut out = Scan::default();
    let mut files = Vec::new();
    for dir in dirs {
        walk(dir, &mut files)?;
    }
    files.sort();
    let mut buf = vec![0u8; CHUNK + longest];
    for path in files {
        let mut found: Vec<usize> = Vec::new();
        // A file deleted while the scan runs (the broker removing a
        // deleted topic) holds nothing any more.
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unreadable(&path, &e)),
        };
        let mut kept = 0usize;
        loop {
            let n = match f.read(&mut buf[kept..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(unreadable(&path, &e)),
            };
            if n == 0 {
                break;
            }
            out.bytes += n as u64;
            let window = &buf[..kept + n];
            for m in automaton.find_overlapping_iter(window) {
                let line = owners[m.pattern().as_usize()];
                if !found.contains(&line) {
                    found.push(line);
                }
            }
            // Keep the tail: a needle may straddle two reads.
            let keep = longest.saturating_sub(1).min(window.len());
            let start = window.len() - keep;
            buf.copy_within(start..kept + n, 0);
            kept = keep;
        }
        out.files += 1;
        found.sort_unstable();
        out.hits.extend(found.into_iter().map(|canary| Hit {
            path: path.clone(),
            canary,
        }));
    }
    Ok(out)
}

fn unreadable(path: &Path, e: &std::io::Error) -> ToolError {
    ToolError::Audit {
        reason: format!("cannot read {}: {e}", path.display()),
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ToolError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unreadable(dir, &e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(dir, &e))?;
        let kind = match entry.file_type() {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unreadable(&entry.path(), &e)),
        };
        if kind.is_dir() {
            walk(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// Destroys the pseudonym key: overwrites the file with zeros, syncs it to
/// disk and deletes it.
///
/// # Errors
/// [`ToolError::Audit`] when the file cannot be overwritten or removed.
pub fn destroy_key(path: &Path) -> Result<(), ToolError> {
    let fail = |e: std::io::Error| ToolError::Audit {
        reason: format!("destroying the key {}: {e}", path.display()),
    };
    let len = std::fs::metadata(path).map_err(fail)?.len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(fail)?;
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).max(64)];
    f.write_all(&zeros).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    drop(f);
    std::fs::remove_file(path).map_err(fail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use epitrace_feeds::PseudonymKey;

    use super::*;

    fn pseudonyms() -> Pseudonymizer {
        Pseudonymizer::new(PseudonymKey::new(vec![7; 32]).unwrap())
    }

    #[test]
    fn every_form_of_a_canary_is_found_even_across_chunks_and_nothing_else() {
        let p = pseudonyms();
        let c = canaries(
            "# planted\n+82 10-1111-2222\n\ncard 4111 1111 1111 1111\n",
            &p,
        )
        .unwrap();
        assert_eq!(c.iter().map(|c| c.line).collect::<Vec<_>>(), vec![2, 4]);
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let pseudonym = p.subject(IdKind::Msisdn, "+82 10-1111-2222").unwrap();
        // The pseudonym straddling the chunk boundary of a big file.
        let mut big = vec![b'x'; CHUNK - 5];
        big.extend_from_slice(pseudonym.as_bytes());
        big.extend(vec![b'y'; 100]);
        std::fs::write(sub.join("segment.log"), &big).unwrap();
        std::fs::write(dir.path().join("raw.txt"), b"..4111111111111111..").unwrap();
        std::fs::write(dir.path().join("digits.txt"), b"id=821011112222;").unwrap();
        std::fs::write(dir.path().join("clean.txt"), b"nothing here 8210").unwrap();
        let s = scan(&[dir.path().to_path_buf(), dir.path().join("missing")], &c).unwrap();
        assert_eq!(s.files, 4);
        let hits: Vec<(String, usize)> = s
            .hits
            .iter()
            .map(|h| {
                (
                    h.path.file_name().unwrap().to_string_lossy().into_owned(),
                    h.canary,
                )
            })
            .collect();
        assert_eq!(
            hits,
            vec![
                ("segment.log".to_owned(), 2),
                ("digits.txt".to_owned(), 2),
                ("raw.txt".to_owned(), 4),
            ]
        );
    }

    #[test]
    fn a_bad_canary_is_named_by_its_line_only_and_the_key_is_destroyed() {
        let err = canaries("+82 10-1111-2222\n12ab\n", &pseudonyms())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && !err.contains("12ab"), "{err}");
        assert!(canaries("# none\n", &pseudonyms()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, [9u8; 32]).unwrap();
        destroy_key(&key).unwrap();
        assert!(!key.exists());
    }
}

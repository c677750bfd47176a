//! `latchkey users import FILE|-`: users brought from another system with the password hashes
//! they have there, one JSON object per line. Read a line at a time, so that an import of any
//! size runs in bounded memory.

use std::io::{BufRead, BufReader, Read};

use anyhow::{Context, bail};
use serde_json::json;

use super::print_json;
use crate::accounts::{self, Change, ImportedUser};

/// The longest line read: far more than a username, a hash and the roles take.
const MAX_LINE: u64 = 64 * 1024;
/// How often progress is reported on standard error, in lines.
const PROGRESS_EVERY: u64 = 10_000;

/// Imports every line of `source` (`-` for standard input). A refused line is named on standard
/// error with its number and why, and nothing of it is stored; the others are imported. Fails
/// when any line was refused.
pub async fn import_users(change: &Change<'_>, source: &str) -> anyhow::Result<()> {
    let input: Box<dyn Read> = if source == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(source).with_context(|| format!("cannot open {source}"))?)
    };
    let mut reader = BufReader::new(input);
    let mut tally = Tally::default();
    let mut chunk: Vec<(u64, Parsed)> = Vec::with_capacity(CHUNK);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read line {}", tally.lines + 1))?;
        if read == 0 {
            break;
        }
        tally.lines += 1;
        let number = tally.lines;
        if line.last() != Some(&b'\n') && read as u64 > MAX_LINE {
            skip_rest_of_line(&mut reader)?;
            chunk.push((number, Err(format!("longer than {MAX_LINE} bytes"))));
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            chunk.push((number, parse_line(&line)));
        }
        if chunk.len() == CHUNK {
            import_chunk(change, std::mem::take(&mut chunk), &mut tally).await;
        }
        if number % PROGRESS_EVERY == 0 {
            import_chunk(change, std::mem::take(&mut chunk), &mut tally).await;
            eprintln!(
                "{number} lines read: {} users imported, {} refused",
                tally.imported, tally.refused
            );
        }
    }
    import_chunk(change, chunk, &mut tally).await;
    print_json(&json!({"imported": tally.imported, "refused": tally.refused}))?;
    if tally.refused > 0 {
        bail!(
            "{} of {} lines were refused (see above); the others were imported",
            tally.refused,
            tally.lines
        );
    }
    Ok(())
}

/// Lines imported at once: their writes share the embedded store's commits and Redis round
/// trips, which makes an import many times faster than a line at a time.
const CHUNK: usize = 250;

type Parsed = Result<ImportedUser, String>;

#[derive(Default)]
struct Tally {
    lines: u64,
    imported: u64,
    refused: u64,
}

fn parse_line(line: &[u8]) -> Parsed {
    serde_json::from_slice(line).map_err(|e| {
        format!("not a JSON object {{\"username\", \"password_hash\", \"roles\"}}: {e}")
    })
}

/// Imports a chunk as if line by line: the first line of each username runs at once with the
/// others, and a name's later lines run after it, in order, so a name given twice keeps the
/// first line that imports (the rest are refused as taken). Refusals are reported in line order.
async fn import_chunk(change: &Change<'_>, chunk: Vec<(u64, Parsed)>, tally: &mut Tally) {
    let mut seen = std::collections::HashSet::new();
    let (mut first, mut again) = (Vec::new(), Vec::new());
    for (number, parsed) in chunk {
        match parsed {
            Ok(user) if !seen.insert(user.username.to_ascii_lowercase()) => {
                again.push((number, user));
            }
            Ok(user) => first.push((number, Some(user), None)),
            Err(why) => first.push((number, None, Some(why))),
        }
    }
    let outcomes = futures_util::future::join_all(first.into_iter().map(
        |(number, user, refused)| async move {
            let outcome = match (user, refused) {
                (Some(user), _) => import_one(change, user).await,
                (None, why) => Err(why.unwrap_or_default()),
            };
            (number, outcome)
        },
    ))
    .await;
    let mut results = outcomes;
    for (number, user) in again {
        results.push((number, import_one(change, user).await));
    }
    results.sort_by_key(|(number, _)| *number);
    for (number, outcome) in results {
        match outcome {
            Ok(()) => tally.imported += 1,
            Err(why) => {
                eprintln!("line {number}: refused: {why}");
                tally.refused += 1;
            }
        }
    }
}

async fn import_one(change: &Change<'_>, user: ImportedUser) -> Result<(), String> {
    accounts::import_user(change, user)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> anyhow::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
}

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
    let (mut number, mut imported, mut refused) = (0u64, 0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read line {}", number + 1))?;
        if read == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') && read as u64 > MAX_LINE {
            eprintln!("line {number}: refused: longer than {MAX_LINE} bytes");
            refused += 1;
            skip_rest_of_line(&mut reader)?;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match import_line(change, &line).await {
            Ok(()) => imported += 1,
            Err(why) => {
                eprintln!("line {number}: refused: {why}");
                refused += 1;
            }
        }
        if number % PROGRESS_EVERY == 0 {
            eprintln!("{number} lines read: {imported} users imported, {refused} refused");
        }
    }
    print_json(&json!({"imported": imported, "refused": refused}))?;
    if refused > 0 {
        bail!("{refused} of {number} lines were refused (see above); the others were imported");
    }
    Ok(())
}

async fn import_line(change: &Change<'_>, line: &[u8]) -> Result<(), String> {
    let user: ImportedUser = serde_json::from_slice(line).map_err(|e| {
        format!("not a JSON object {{\"username\", \"password_hash\", \"roles\"}}: {e}")
    })?;
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

//! Job ids on the command line: a unique prefix of at least [`MIN_PREFIX`] characters stands
//! for the whole id, and tables show generated (UUID) ids in the shortest form that resolves
//! back to the same job.

use anyhow::Result;
use queuectl::error::Error;
use queuectl::Queue;

/// The fewest characters a prefix needs: shorter ones match too many ids to be worth typing,
/// and a typo of two characters should not silently pick a job.
pub const MIN_PREFIX: usize = 4;

/// How many matches an ambiguous prefix lists; one more is fetched to know there are more.
const MAX_LISTED: usize = 10;

/// The length of the short form of a generated id, as `git` shows commits.
pub const SHORT_LEN: usize = 8;

/// The full id that `given` stands for: the job whose id it is (an exact id always wins),
/// else the one job whose id starts with it.
pub fn resolve(queue: &Queue, given: &str) -> Result<String> {
    // The exact id, when it exists, sorts first among the ids starting with it.
    let matches = queue.ids_with_prefix(given, MAX_LISTED as u64 + 1)?;
    if matches.first().map(String::as_str) == Some(given) {
        return Ok(given.to_string());
    }
    if given.chars().count() < MIN_PREFIX {
        return Err(Error::InvalidArgument(format!(
            "no job with id `{given}`, and an id prefix needs at least {MIN_PREFIX} characters"
        ))
        .into());
    }
    match matches.len() {
        0 => Err(Error::NotFound(given.to_string()).into()),
        1 => Ok(matches[0].clone()),
        n => {
            let listed = matches[..n.min(MAX_LISTED)].join(", ");
            let message = if n > MAX_LISTED {
                format!("id prefix `{given}` matches more than {MAX_LISTED} jobs: {listed}, …")
            } else {
                format!("id prefix `{given}` matches {n} jobs: {listed}")
            };
            Err(Error::InvalidArgument(message).into())
        }
    }
}

/// Like [`resolve`], but an id no job has is returned as given, for commands whose library
/// call checks every id in argument order and reports the first problem (`dlq retry`).
/// Ambiguous and too-short prefixes are still refused here.
pub fn resolve_or_keep(queue: &Queue, given: &str) -> Result<String> {
    match resolve(queue, given) {
        Err(error) if matches!(error.downcast_ref::<Error>(), Some(Error::NotFound(_))) => Ok(given.to_string()),
        other => other,
    }
}

/// Resolves several ids, in order.
pub fn resolve_all(queue: &Queue, given: &[String]) -> Result<Vec<String>> {
    given.iter().map(|id| resolve(queue, id)).collect()
}

/// Whether `id` looks generated: a UUID, hyphenated (`enqueue` without an id) or simple (ids
/// the spool derives from a file). User-given ids are shown whole.
pub fn is_generated(id: &str) -> bool {
    let bytes = id.as_bytes();
    let hex = |b: &u8| b.is_ascii_hexdigit();
    match bytes.len() {
        32 => bytes.iter().all(hex),
        36 => bytes.iter().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *b == b'-'
            } else {
                hex(b)
            }
        }),
        _ => false,
    }
}

/// The form of `id` a table shows: user-given ids whole; generated ids cut to
/// [`SHORT_LEN`] characters, or longer when another id shares that start, so that what is
/// shown is always accepted back by [`resolve`].
pub fn short_form(queue: &Queue, id: &str) -> Result<String> {
    if !is_generated(id) {
        return Ok(id.to_string());
    }
    let (before, after) = queue.id_neighbours(id)?;
    let len = [before, after]
        .iter()
        .flatten()
        .map(|other| shared_prefix_len(id, other) + 1)
        .fold(SHORT_LEN, usize::max)
        .min(id.len());
    // Generated ids are ASCII, so any byte length is a char boundary.
    Ok(id[..len].to_string())
}

/// How many leading bytes two strings share.
fn shared_prefix_len(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_uuids_in_either_spelling() {
        assert!(is_generated("0b9c2f6e-3f0a-4c55-9a43-5d2f1e0c8b7a"));
        assert!(is_generated("0b9c2f6e3f0a4c559a435d2f1e0c8b7a"));
        assert!(!is_generated("job1"));
        assert!(!is_generated("0b9c2f6e-3f0a-4c55-9a43-5d2f1e0c8b7g"));
        assert!(!is_generated("0b9c2f6e+3f0a-4c55-9a43-5d2f1e0c8b7a"));
    }

    #[test]
    fn shared_prefix_counts_common_leading_bytes() {
        assert_eq!(shared_prefix_len("abcd", "abxy"), 2);
        assert_eq!(shared_prefix_len("abcd", "abcd1"), 4);
        assert_eq!(shared_prefix_len("", "a"), 0);
    }
}

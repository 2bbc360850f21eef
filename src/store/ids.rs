//! Id ranges both backends search by: ids compare bytewise (SQLite's `BINARY`, PostgreSQL's
//! `COLLATE "C"`), and UTF-8 byte order is code point order.

/// The smallest string greater than every string that starts with `prefix`: the prefix with
/// its last character replaced by the next code point, so `[prefix, successor)` is exactly the
/// ids that start with `prefix`, a range on the id index. `None` when there is no such string
/// (empty prefix, or it ends in U+10FFFF): the caller scans forward from the prefix instead.
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let mut code = last as u32 + 1;
    // Surrogates are not chars; the next one after U+D7FF is U+E000.
    if (0xD800..0xE000).contains(&code) {
        code = 0xE000;
    }
    chars.push(char::from_u32(code)?);
    Some(chars.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_exactly_the_extensions_of_a_prefix() {
        assert_eq!(prefix_successor("ab12").as_deref(), Some("ab13"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
        for (id, inside) in [
            ("ab12", true),
            ("ab12ffff", true),
            ("ab13", false),
            ("ab1", false),
            ("ab11z", false),
        ] {
            let upper = prefix_successor("ab12").unwrap_or_default();
            let in_range = id >= "ab12" && id < upper.as_str();
            assert_eq!(in_range, inside, "{id}");
        }
    }
}

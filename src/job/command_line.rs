//! A command given as words, the way a shell user types it after `queuectl add --`, into the
//! `sh -c` string a shell job stores; and the rule for environment variable names given on the
//! command line.

/// The shell command that runs `words` exactly as given.
///
/// One word is used as it is, as a shell command string: `add -- 'make && make install'`
/// keeps its `&&`, because quoting it whole would look for a program called
/// `make && make install`. Several words are one argument each: every word that is not plainly
/// safe is single-quoted (an embedded `'` becomes `'\''`), so spaces, quotes, `$`, `*`,
/// backslashes and newlines reach the program untouched, as `pueue add` and `tsp` do.
///
/// Returns `None` for no words.
pub fn shell_command_from_words(words: &[String]) -> Option<String> {
    match words {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => {
            let mut command = quote_word(first, true);
            for word in rest {
                command.push(' ');
                command.push_str(&quote_word(word, false));
            }
            Some(command)
        }
    }
}

/// `word` as one shell word: unchanged if no shell would read anything special into it, else
/// single-quoted. Leaving plain words bare keeps `list` readable (`make -j4`, not
/// `'make' '-j4'`).
fn quote_word(word: &str, is_command_name: bool) -> String {
    if is_plain(word, is_command_name) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// True if `word` means itself to `sh` without quotes.
///
/// Only characters no shell treats specially are plain. In the command-name position a word
/// with `=` would be read as a variable assignment and a reserved word (`if`, `!`) as syntax,
/// so those are quoted there; elsewhere `--flag=value` stays bare.
fn is_plain(word: &str, is_command_name: bool) -> bool {
    const RESERVED: &[&str] = &[
        "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in", "select",
        "then", "time", "until", "while", "[[", "]]",
    ];
    if word.is_empty() || (is_command_name && RESERVED.contains(&word)) {
        return false;
    }
    word.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '-' | '.' | '/' | ':' | ',' | '+' | '@' | '%')
            || (c == '=' && !is_command_name)
    })
}

/// Checks a variable name given with `--env NAME=VALUE` or `--env-pass NAME`: letters, digits
/// and `_`, not starting with a digit, so that the job's shell can read it as `$NAME`.
///
/// Job JSON keeps its looser rule (no `=`, no NUL) so files that were accepted stay accepted;
/// a name typed on the command line that a shell cannot use is a typo worth refusing.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(first) => {
            (first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid variable name (letters, digits and `_`, not starting with a digit)",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_word_is_a_shell_command_string_as_is() {
        assert_eq!(
            shell_command_from_words(&words(&["make && make install"])).as_deref(),
            Some("make && make install")
        );
        assert_eq!(shell_command_from_words(&[]), None);
    }

    #[test]
    fn plain_words_stay_bare_and_others_are_single_quoted() {
        assert_eq!(
            shell_command_from_words(&words(&["make", "-j4", "--jobs=4", "a/b.c"])).as_deref(),
            Some("make -j4 --jobs=4 a/b.c")
        );
        assert_eq!(
            shell_command_from_words(&words(&["printf", "%s|", "a b", "it's", "$HOME", "*", ""])).as_deref(),
            Some(r"printf '%s|' 'a b' 'it'\''s' '$HOME' '*' ''")
        );
    }

    #[test]
    fn the_command_name_quotes_assignments_and_reserved_words() {
        assert_eq!(
            shell_command_from_words(&words(&["A=1", "env"])).as_deref(),
            Some("'A=1' env")
        );
        assert_eq!(
            shell_command_from_words(&words(&["if", "x"])).as_deref(),
            Some("'if' x")
        );
        assert_eq!(
            shell_command_from_words(&words(&["echo", "if"])).as_deref(),
            Some("echo if")
        );
    }

    #[test]
    fn env_names_are_shell_identifiers() {
        for good in ["A", "_", "PATH", "my_var2"] {
            assert_eq!(check_env_name(good), Ok(()), "{good}");
        }
        for bad in ["", "1X", "A-B", "A=B", "Ä", "A B"] {
            let error = check_env_name(bad).expect_err(bad);
            assert!(error.contains("not a valid variable name"), "{error}");
        }
    }
}

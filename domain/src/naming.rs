//! The session-naming rule: a session is named after its first user message.
//!
//! The name is the message's first line, cut further at the end of its first sentence;
//! if that is longer than [`MAX_NAME_CHARS`] characters it is cut at the last word
//! boundary that leaves room for `...`. Lengths count characters, so a cut never splits a
//! UTF-8 character. An empty result becomes [`DEFAULT_NAME`].

/// The longest name, in characters, ellipsis included.
pub const MAX_NAME_CHARS: usize = 50;
/// The name of a session whose first message has no usable text.
pub const DEFAULT_NAME: &str = "New Chat";
const ELLIPSIS: &str = "...";

/// Derives a session name from the text of its first user message.
#[must_use]
pub fn session_name(first_message: &str) -> String {
    let first_line = first_message.trim().split(['\n', '\r']).next().unwrap_or_default();
    let sentence = match first_line.find(['.', '?', '!']) {
        // Keep the punctuation mark: "How do I reset my password?" reads better whole.
        Some(end) => &first_line[..=end],
        None => first_line,
    };
    let sentence = sentence.trim();
    if sentence.is_empty() {
        return DEFAULT_NAME.to_owned();
    }
    if sentence.chars().count() <= MAX_NAME_CHARS {
        return sentence.to_owned();
    }
    let room = MAX_NAME_CHARS - ELLIPSIS.len();
    let prefix_end = sentence.char_indices().nth(room).map_or(sentence.len(), |(index, _)| index);
    let prefix = &sentence[..prefix_end];
    let ends_on_word_boundary = sentence[prefix_end..].starts_with(char::is_whitespace);
    // Cut at the last word boundary when there is one; a single over-long word is cut
    // at the character limit instead.
    let cut = match prefix.rfind(char::is_whitespace) {
        _ if ends_on_word_boundary => prefix.trim_end(),
        Some(space) if space > 0 => prefix[..space].trim_end(),
        _ => prefix,
    };
    format!("{cut}{ELLIPSIS}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_first_line_is_the_name() {
        assert_eq!(session_name("Hello there\nsecond line"), "Hello there");
        assert_eq!(session_name("What is Rust? Tell me more."), "What is Rust?");
        assert_eq!(session_name("   \n  "), DEFAULT_NAME);
        assert_eq!(session_name(""), DEFAULT_NAME);
    }

    #[test]
    fn long_text_is_cut_at_a_word_boundary_with_an_ellipsis() {
        let name =
            session_name("Please explain the difference between ownership and borrowing in great depth");
        assert_eq!(name, "Please explain the difference between ownership...");
        assert!(name.chars().count() <= MAX_NAME_CHARS);
    }

    #[test]
    fn one_long_word_is_cut_at_the_character_limit() {
        let name = session_name(&"é".repeat(80));
        assert_eq!(name.chars().count(), MAX_NAME_CHARS);
        assert!(name.ends_with(ELLIPSIS));
    }

    proptest! {
        #[test]
        fn name_is_never_longer_than_fifty_characters(text in "\\PC{0,200}") {
            let name = session_name(&text);
            prop_assert!(name.chars().count() <= MAX_NAME_CHARS);
            prop_assert!(!name.is_empty());
        }

        #[test]
        fn name_is_a_prefix_of_the_message_or_the_default(text in "[a-zé日本 .?!\n]{0,120}") {
            let name = session_name(&text);
            let stem = name.strip_suffix(ELLIPSIS).unwrap_or(&name);
            prop_assert!(name == DEFAULT_NAME || text.trim().starts_with(stem));
        }

        #[test]
        fn a_cut_name_ends_at_a_word_boundary(words in proptest::collection::vec("[a-z]{1,12}", 2..20)) {
            let text = words.join(" ");
            let name = session_name(&text);
            if let Some(stem) = name.strip_suffix(ELLIPSIS) {
                // Words of at most 12 letters always leave a boundary within 47 characters.
                prop_assert!(text.chars().count() > MAX_NAME_CHARS);
                prop_assert!(stem.chars().count() <= MAX_NAME_CHARS - 3);
                prop_assert!(text[stem.len()..].starts_with(' '), "{:?} cut inside a word", name);
                prop_assert!(!stem.ends_with(' '));
            } else {
                prop_assert_eq!(name, text);
            }
        }

        #[test]
        fn multibyte_text_never_panics_and_stays_valid(text in "[日本語🦀 ]{40,120}") {
            // Slicing inside a character would panic; reaching here proves it did not.
            let name = session_name(&text);
            prop_assert!(name.chars().count() <= MAX_NAME_CHARS);
        }
    }

    #[test]
    fn a_word_crossing_the_limit_is_dropped_whole() {
        // Character 47 ("s" of "ownerships") is inside a word: the cut goes back to the
        // space before that word.
        let text = "Please explain the difference between ownerships and borrowing";
        assert_eq!(text.chars().nth(47), Some('s'));
        assert_eq!(session_name(text), "Please explain the difference between...");
    }

    #[test]
    fn a_word_ending_exactly_at_the_limit_is_kept() {
        // Characters 0..47 end with a whole word and character 47 is a space.
        let text = "Please explain the difference between ownership and borrowing";
        assert_eq!(text.chars().nth(47), Some(' '));
        assert_eq!(session_name(text), "Please explain the difference between ownership...");
    }

    #[test]
    fn fifty_characters_stay_whole_and_fifty_one_are_cut() {
        let fifty = format!("{} {}", "a".repeat(24), "b".repeat(25));
        assert_eq!(fifty.chars().count(), 50);
        assert_eq!(session_name(&fifty), fifty);
        let fifty_one = format!("{fifty}b");
        assert_eq!(session_name(&fifty_one), format!("{}...", "a".repeat(24)));
    }

    #[test]
    fn a_long_first_word_is_cut_at_47_characters() {
        let text = format!("{} tail", "x".repeat(60));
        assert_eq!(session_name(&text), format!("{}...", "x".repeat(47)));
    }
}

//! How a service's refusal reads to a person: every door shows the same error text as a sentence.

/// `text` with its first letter upper-cased and a full stop added unless it ends in one.
pub fn as_sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().chain(chars).collect();
            if !out.ends_with(['.', '!', '?']) {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::as_sentence;

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            as_sentence("that code is not right"),
            "That code is not right."
        );
        assert_eq!(as_sentence("already done!"), "Already done!");
        assert_eq!(as_sentence(""), "");
    }
}

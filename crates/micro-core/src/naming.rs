//! How names turn into one another, the same in the gateway, the CLI and `micro new`:
//! URL and command words become proto names by title-casing each dash-, underscore- or
//! dot-separated part.

use crate::Endpoint;

/// `baz-xyz` → `BazXyz`, `fooBar` → `FooBar`, `say_hello` → `SayHello`, `foo.bar` → `FooBar`.
pub fn title(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    title_into(&mut out, word);
    out
}

/// [`title`], appended to `out` (no allocation of its own).
pub fn title_into(out: &mut String, word: &str) {
    for w in word.split(['-', '_', '.']) {
        let mut chars = w.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.push_str(chars.as_str());
        }
    }
}

/// The proto services that `endpoints` belong to (the `X` of each `X.Method`), sorted, once.
pub fn proto_services<'a>(endpoints: impl IntoIterator<Item = &'a Endpoint>) -> Vec<&'a str> {
    let mut names: Vec<&str> = endpoints
        .into_iter()
        .filter_map(|e| e.name.split_once('.').map(|(s, _)| s))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_cases_every_part() {
        for (word, want) in [
            ("baz-xyz", "BazXyz"),
            ("fooBar", "FooBar"),
            ("say_hello", "SayHello"),
            ("foo.bar", "FooBar"),
            ("-", ""),
        ] {
            assert_eq!(title(word), want, "{word}");
        }
    }

    #[test]
    fn proto_services_are_listed_once() {
        let endpoints = [
            Endpoint::new("B.X"),
            Endpoint::new("A.Y"),
            Endpoint::new("A.Z"),
        ];
        assert_eq!(proto_services(&endpoints), ["A", "B"]);
    }
}

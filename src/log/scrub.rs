//! Redaction: free text (an error's detail, a provider's answer) made fit for a log line, which
//! may carry no secret and no phone number.

/// Longest free text (an error's detail) a line keeps, in bytes.
pub(super) const MAX_TEXT: usize = 300;
/// What [`scrub`] writes instead of what it removes.
const REDACTED: &str = "[redacted]";

/// Free text made fit for a log line: each of `secrets` (compared without regard to ASCII
/// case) and every group of 5 to 15 digits, optionally after `+`, with up to two of
/// ` -.()/` between digits (a phone number in any form; an IPv4 address is kept) become
/// [`REDACTED`]; what is left is cut to 300 bytes.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = replace_ignoring_case(&text, secret);
    }
    let text = mask_digit_groups(&text);
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn replace_ignoring_case(text: &str, secret: &str) -> String {
    let lower_text = text.to_ascii_lowercase();
    let lower_secret = secret.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    // ASCII lower-casing keeps byte offsets, so positions in `lower_text` are those in `text`.
    while let Some(at) = lower_text[from..].find(&lower_secret) {
        out.push_str(&text[from..from + at]);
        out.push_str(REDACTED);
        from += at + lower_secret.len();
    }
    out.push_str(&text[from..]);
    out
}

const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')', '/'];

fn mask_digit_groups(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_group = chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        // A group starts at a digit not glued to letters or digits before it.
        let glued = i > 0 && (chars[i - 1].is_ascii_alphanumeric());
        if !starts_group || glued {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + usize::from(chars[i] == '+');
        let mut digits = 0;
        let mut j = end;
        loop {
            while j < chars.len() && chars[j].is_ascii_digit() {
                digits += 1;
                j += 1;
            }
            end = j;
            let mut k = j;
            while k < chars.len() && k - j < 2 && SEPARATORS.contains(&chars[k]) {
                k += 1;
            }
            if k > j && k < chars.len() && chars[k].is_ascii_digit() {
                j = k;
            } else {
                break;
            }
        }
        let group: String = chars[start..end].iter().collect();
        if (5..=15).contains(&digits) && !ipv4(&group) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&group);
        }
        i = end;
    }
    out
}

fn ipv4(group: &str) -> bool {
    let parts: Vec<&str> = group.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

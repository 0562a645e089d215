//! The code SMS's text: our wording in ten languages, the language chosen for the user (the
//! token's `locale`, else `Accept-Language`, else `SMS_DEFAULT_LANGUAGE`), operators' overrides
//! (`SMS_TEXT`, `SMS_TEXT_<LANG>`), the autofill lines (WebOTP / iOS `@domain #code`, Android's
//! SMS Retriever hash) and how many segments a text costs. docs/configuration.md "SMS texts".

use crate::error::Error;

/// The languages we ship texts for, with our wording. `{code}` and `{minutes}` are filled in;
/// each stays within one segment (GSM-7 where the language can be written in it).
pub const TEXTS: &[(&str, &str)] = &[
    (
        "en",
        "Your verification code is {code}. It expires in {minutes} min. Never share it with anyone.",
    ),
    (
        "de",
        "Ihr Bestätigungscode lautet {code}. Er ist {minutes} Min. gültig. Geben Sie ihn niemandem weiter.",
    ),
    (
        "fr",
        "Votre code de vérification est {code}. Il expire dans {minutes} min. Ne le partagez avec personne.",
    ),
    (
        "it",
        "Il tuo codice di verifica è {code}. Scade tra {minutes} min. Non condividerlo con nessuno.",
    ),
    (
        "es",
        "Tu clave de acceso es {code}. Caduca en {minutes} min. No la compartas con nadie.",
    ),
    (
        "pt",
        "O seu PIN é {code}. Vale por {minutes} min. Nunca o partilhe com ninguém.",
    ),
    (
        "nl",
        "Je verificatiecode is {code}. Hij verloopt over {minutes} min. Deel hem met niemand.",
    ),
    (
        "pl",
        "Kod weryfikacyjny: {code}. Ważny {minutes} min. Nie podawaj go nikomu.",
    ),
    (
        "ja",
        "認証コードは{code}です。有効期限は{minutes}分です。誰にも教えないでください。",
    ),
    (
        "zh",
        "您的验证码是{code}，{minutes}分钟内有效。请勿告诉他人。",
    ),
];

/// The placeholders a text may hold.
const PLACEHOLDERS: &[&str] = &["code", "minutes", "app"];

/// The settings of this module, parsed and checked once with the others (`config.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsTexts {
    pub default_language: &'static str,
    /// `SMS_APP_NAME`: `{app}` in a text; built-in texts then start with "<app>: ".
    pub app_name: Option<String>,
    /// `SMS_TEXT`: one text for every language without its own override.
    pub all: Option<String>,
    /// `SMS_TEXT_<LANG>`, by language.
    pub per_language: Vec<(&'static str, String)>,
    /// `SMS_AUTOFILL_DOMAIN`: adds the last line `@<domain> #<code>`.
    pub autofill_domain: Option<String>,
    /// `SMS_ANDROID_HASH`: adds the app's 11-character hash on a line of its own.
    pub android_hash: Option<String>,
}

/// The per-language override setting's name (`SMS_TEXT_DE`).
pub fn override_setting(language: &str) -> Option<&'static str> {
    set_my_phone_wire::settings::SETTINGS
        .iter()
        .map(|setting| setting.name)
        .find(|name| {
            name.strip_prefix("SMS_TEXT_")
                .is_some_and(|lang| lang.eq_ignore_ascii_case(language))
        })
}

/// Checks a text's placeholders: known ones only, and the code at least once.
fn check_text(variable: &'static str, text: &str) -> Result<String, Error> {
    let mut rest = text;
    let mut has_code = false;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::config(variable, "has a { without its }"))?;
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(Error::config(
                variable,
                format!(
                    "has the unknown placeholder {{{name}}}: use {{code}}, {{minutes}} or {{app}}"
                ),
            ));
        }
        has_code |= name == "code";
        rest = &after[end + 1..];
    }
    if !has_code {
        return Err(Error::config(variable, "must contain {code}"));
    }
    Ok(text.to_owned())
}

impl SmsTexts {
    pub fn from_settings(get: &impl Fn(&str) -> Option<String>) -> Result<SmsTexts, Error> {
        let default_language = match get("SMS_DEFAULT_LANGUAGE") {
            None => "en",
            Some(text) => supported(&text).ok_or_else(|| {
                Error::config(
                    "SMS_DEFAULT_LANGUAGE",
                    format!("must be one of {}", language_list()),
                )
            })?,
        };
        let all = get("SMS_TEXT")
            .map(|text| check_text("SMS_TEXT", &text))
            .transpose()?;
        let mut per_language = Vec::new();
        for (language, _) in TEXTS {
            let Some(variable) = override_setting(language) else {
                continue;
            };
            if let Some(text) = get(variable) {
                per_language.push((*language, check_text(variable, &text)?));
            }
        }
        let autofill_domain = get("SMS_AUTOFILL_DOMAIN")
            .map(|domain| {
                let domain = domain.trim().to_ascii_lowercase();
                let valid = domain.contains('.')
                    && domain.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                valid.then_some(domain).ok_or_else(|| {
                    Error::config(
                        "SMS_AUTOFILL_DOMAIN",
                        "must be a host name such as app.example.com",
                    )
                })
            })
            .transpose()?;
        let android_hash = get("SMS_ANDROID_HASH")
            .map(|hash| {
                let hash = hash.trim().to_owned();
                let valid = hash.len() == 11
                    && hash
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
                valid.then_some(hash).ok_or_else(|| {
                    Error::config(
                        "SMS_ANDROID_HASH",
                        "must be the 11-character app hash Android's SMS Retriever computes",
                    )
                })
            })
            .transpose()?;
        Ok(SmsTexts {
            default_language,
            app_name: get("SMS_APP_NAME").map(|name| name.trim().to_owned()),
            all,
            per_language,
            autofill_domain,
            android_hash,
        })
    }

    /// The language for a user: the token's `locale`, else the first supported language of
    /// `Accept-Language`, else the default.
    pub fn language(&self, locale: Option<&str>, accept_language: Option<&str>) -> &'static str {
        locale
            .and_then(supported)
            .or_else(|| accept_language.and_then(first_accepted))
            .unwrap_or(self.default_language)
    }

    /// The text of a code in `language`, valid `minutes`, with the autofill lines.
    pub fn render(&self, language: &str, code: &str, minutes: u64) -> String {
        let own = self
            .per_language
            .iter()
            .find(|(lang, _)| *lang == language)
            .map(|(_, text)| text.as_str())
            .or(self.all.as_deref());
        let builtin = || {
            TEXTS
                .iter()
                .find(|(lang, _)| *lang == language)
                .or_else(|| TEXTS.first())
                .map_or("{code}", |(_, text)| text)
        };
        let app = self.app_name.as_deref().unwrap_or_default();
        let template = match own {
            Some(text) => text.to_owned(),
            None if app.is_empty() => builtin().to_owned(),
            None => format!("{{app}}: {}", builtin()),
        };
        let mut text = template
            .replace("{code}", code)
            .replace("{minutes}", &minutes.to_string())
            .replace("{app}", app);
        if let Some(hash) = &self.android_hash {
            text.push_str("\n\n");
            text.push_str(hash);
        }
        if let Some(domain) = &self.autofill_domain {
            // WebOTP and iOS read the origin-bound code from the message's last line.
            text.push_str(if self.android_hash.is_some() {
                "\n"
            } else {
                "\n\n"
            });
            text.push_str(&format!("@{domain} #{code}"));
        }
        text
    }
}

fn language_list() -> String {
    TEXTS
        .iter()
        .map(|(lang, _)| *lang)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The supported language a tag names: `de`, `de-CH`, `DE_ch`, `zh-Hant-TW` (its base language).
pub fn supported(tag: &str) -> Option<&'static str> {
    let base = tag
        .trim()
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    TEXTS
        .iter()
        .map(|(lang, _)| *lang)
        .find(|lang| *lang == base)
}

/// The first supported language of an `Accept-Language` header, by quality (ties in order).
fn first_accepted(header: &str) -> Option<&'static str> {
    let mut ranges: Vec<(u32, usize, &str)> = header
        .split(',')
        .enumerate()
        .filter_map(|(position, item)| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let quality = parts
                .find_map(|param| param.trim().strip_prefix("q="))
                .map_or(Some(1000), |q| {
                    q.trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .map(|q| (q * 1000.0).round() as u32)
                })?;
            (quality > 0 && !tag.is_empty()).then_some((quality, position, tag))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.into_iter().find_map(|(_, _, tag)| supported(tag))
}

/// How a text is encoded for SMS, and how many segments it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38's 7-bit alphabet: 160 characters in one segment, 153 per segment beyond.
    Gsm7,
    /// UCS-2 (anything outside GSM-7): 70 in one segment, 67 per segment beyond.
    Ucs2,
}

/// GSM 03.38's basic set, as text (the escape at 0x1B left out).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Its extension table: each costs two septets.
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

/// The encoding and segment count of `text`.
pub fn segments(text: &str) -> (Encoding, usize) {
    let mut septets: usize = 0;
    let mut gsm = true;
    for c in text.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    if gsm {
        let count = if septets <= 160 {
            1
        } else {
            septets.div_ceil(153)
        };
        return (Encoding::Gsm7, count);
    }
    // UCS-2 counts 16-bit units: characters outside the BMP take two.
    let units: usize = text.chars().map(char::len_utf16).sum();
    let count = if units <= 70 { 1 } else { units.div_ceil(67) };
    (Encoding::Ucs2, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pairs: &[(&str, &str)]) -> Result<SmsTexts, Error> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        SmsTexts::from_settings(&get)
    }

    #[test]
    fn every_language_fits_one_segment_and_says_which_need_ucs2() {
        // A six-character code valid 60 minutes, the defaults.
        let defaults = texts(&[]).unwrap();
        let mut ucs2 = Vec::new();
        for (language, _) in TEXTS {
            let text = defaults.render(language, "A1B2C3", 60);
            let (encoding, count) = segments(&text);
            assert_eq!(count, 1, "{language}: {text}");
            if encoding == Encoding::Ucs2 {
                ucs2.push(*language);
            }
        }
        // Polish, Japanese and Chinese cannot be written in GSM-7; the others are.
        assert_eq!(ucs2, ["pl", "ja", "zh"]);
        // With an app name and both autofill lines, the GSM-7 texts still fit one segment.
        let full = texts(&[
            ("SMS_APP_NAME", "Example"),
            ("SMS_AUTOFILL_DOMAIN", "app.example.com"),
            ("SMS_ANDROID_HASH", "FA+9qCX9VSu"),
        ])
        .unwrap();
        for (language, _) in TEXTS {
            let text = full.render(language, "A1B2C3", 60);
            let (encoding, count) = segments(&text);
            let expected = if encoding == Encoding::Gsm7 { 1 } else { 2 };
            assert_eq!(
                count,
                expected,
                "{language}: {} chars: {text}",
                text.chars().count()
            );
        }
    }

    #[test]
    fn segments_count_like_carriers() {
        assert_eq!(segments(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(segments(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(
            segments(&"€".repeat(80)),
            (Encoding::Gsm7, 1),
            "two septets each"
        );
        assert_eq!(segments(&"€".repeat(81)), (Encoding::Gsm7, 2));
        assert_eq!(segments(&"ó".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(segments(&"ó".repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(segments(&"ó".repeat(135)), (Encoding::Ucs2, 3));
    }

    #[test]
    fn the_language_comes_from_the_locale_then_the_header_then_the_default() {
        let defaults = texts(&[]).unwrap();
        assert_eq!(defaults.language(Some("de-CH"), Some("fr")), "de");
        assert_eq!(defaults.language(Some("sv"), Some("fr-CA, en;q=0.5")), "fr");
        assert_eq!(
            defaults.language(None, Some("sv, ja;q=0.8, de;q=0.9")),
            "de"
        );
        assert_eq!(defaults.language(None, Some("zh-Hant-TW")), "zh");
        assert_eq!(defaults.language(None, Some("de;q=0, it")), "it");
        assert_eq!(defaults.language(None, Some("*, sv")), "en");
        assert_eq!(defaults.language(None, None), "en");
        let swiss = texts(&[("SMS_DEFAULT_LANGUAGE", "de_CH")]).unwrap();
        assert_eq!(swiss.language(Some(""), Some("garbage;q=x")), "de");
    }

    #[test]
    fn overrides_apply_per_language_then_for_all() {
        let texts = texts(&[
            ("SMS_TEXT", "{app} code {code}, {minutes} min"),
            ("SMS_TEXT_DE", "Code {code} für {app}"),
            ("SMS_APP_NAME", "Acme"),
        ])
        .unwrap();
        assert_eq!(texts.render("de", "X1", 10), "Code X1 für Acme");
        assert_eq!(texts.render("ja", "X1", 10), "Acme code X1, 10 min");
    }

    #[test]
    fn built_in_texts_name_the_app_and_end_with_the_autofill_lines() {
        let texts = texts(&[
            ("SMS_APP_NAME", "Acme"),
            ("SMS_AUTOFILL_DOMAIN", "App.Example.com"),
            ("SMS_ANDROID_HASH", "FA+9qCX9VSu"),
        ])
        .unwrap();
        assert_eq!(
            texts.render("en", "X1Y2", 15),
            "Acme: Your verification code is X1Y2. It expires in 15 min. Never share it with anyone.\n\nFA+9qCX9VSu\n@app.example.com #X1Y2"
        );
    }

    #[test]
    fn bad_texts_and_settings_name_the_setting() {
        for (name, value) in [
            ("SMS_TEXT", "no code here"),
            ("SMS_TEXT", "{code} {user}"),
            ("SMS_TEXT_FR", "code {code"),
            ("SMS_DEFAULT_LANGUAGE", "sv"),
            ("SMS_AUTOFILL_DOMAIN", "https://app.example.com"),
            ("SMS_ANDROID_HASH", "tooshort"),
        ] {
            match texts(&[(name, value)]) {
                Err(Error::Config { variable, .. }) => assert_eq!(variable, name, "{value}"),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_language_has_its_override_setting() {
        for (language, text) in TEXTS {
            assert!(override_setting(language).is_some(), "SMS_TEXT_{language}");
            assert!(check_text("SMS_TEXT", text).is_ok(), "{language}");
        }
    }
}

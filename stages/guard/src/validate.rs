//! Checks that turn a candidate span into a finding: check digits, parses
//! and entropy. Each takes the candidate's text and answers without panicking
//! on any input.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The Luhn check of a string of ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// A card number: 13 to 19 digits, an issuer's prefix, and the Luhn check.
pub fn credit_card(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(13..=19).contains(&n) || !luhn(digits) {
        return false;
    }
    let prefix = |k: usize| -> u32 {
        std::str::from_utf8(&digits[..k])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let (p1, p2, p4, p6) = (prefix(1), prefix(2), prefix(4), prefix(6));
    match p1 {
        4 => matches!(n, 13 | 16 | 19),              // Visa
        5 => (51..=55).contains(&p2) && n == 16,     // Mastercard
        2 => (2221..=2720).contains(&p4) && n == 16, // Mastercard 2-series
        3 => {
            (matches!(p2, 34 | 37) && n == 15)                                  // Amex
            || (matches!(p2, 30 | 36 | 38 | 39) && (14..=19).contains(&n))       // Diners
            || ((3528..=3589).contains(&p4) && (16..=19).contains(&n))
        } // JCB
        6 => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&(p6 / 1000)) || (622126..=622925).contains(&p6))
                && (16..=19).contains(&n)
        } // Discover, UnionPay co-branded
        _ => false,
    }
}

/// IBAN lengths by country (the SWIFT registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// An IBAN (spaces allowed): the country's length and the mod-97 check.
pub fn iban(candidate: &str) -> bool {
    let compact: Vec<u8> = candidate.bytes().filter(|b| *b != b' ').collect();
    if compact.len() < 15 || compact.len() > 34 || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = std::str::from_utf8(&compact[..2]).unwrap_or("");
    match IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
        Some((_, len)) if *len == compact.len() => {}
        _ => return false,
    }
    let rotated = compact[4..].iter().chain(&compact[..4]);
    let mut rem = 0u32;
    for b in rotated {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A US social security number's digits (9): no area 000, 666 or 9xx, no
/// group 00, no serial 0000, and not one digit repeated.
pub fn us_ssn(digits: &[u8]) -> bool {
    if digits.len() != 9 || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let area = &digits[..3];
    !(area == b"000"
        || area == b"666"
        || area[0] == b'9'
        || &digits[3..5] == b"00"
        || &digits[5..] == b"0000")
}

/// A dotted IPv4 address (four groups, no leading zeros beyond `0`).
pub fn ipv4(candidate: &str) -> bool {
    candidate.parse::<Ipv4Addr>().is_ok()
}

/// An IPv6 address, as the standard library parses it (a trailing
/// `/prefix` or `%zone` is not part of the span).
pub fn ipv6(candidate: &str) -> bool {
    candidate.matches(':').count() >= 2 && candidate.parse::<Ipv6Addr>().is_ok()
}

/// A phone number valid in its country, parsed with libphonenumber's
/// metadata: with a leading `+` in any country, else in `region`.
pub fn phone(candidate: &str, region: phonenumber::country::Id) -> bool {
    let region = if candidate.starts_with('+') {
        None
    } else {
        Some(region)
    };
    match phonenumber::parse(region, candidate) {
        Ok(number) => phonenumber::is_valid(&number),
        Err(_) => false,
    }
}

/// A JSON Web Token: its header decodes to a JSON object with an `alg`.
pub fn jwt(candidate: &str) -> bool {
    use base64::Engine;
    let Some(header) = candidate.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('='))
    else {
        return false;
    };
    matches!(
        serde_json::from_slice::<serde_json::Value>(&bytes),
        Ok(serde_json::Value::Object(m)) if m.contains_key("alg")
    )
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether a token looks random enough to be a credential: detect-secrets'
/// limits (4.5 bits for base64-like, 3.0 for hex), and letters and digits both.
pub fn high_entropy(token: &str) -> bool {
    if token.len() < 20 {
        return false;
    }
    let hex = token.bytes().all(|b| b.is_ascii_hexdigit());
    let has_digit = token.bytes().any(|b| b.is_ascii_digit());
    let has_alpha = token.bytes().any(|b| b.is_ascii_alphabetic());
    has_digit && has_alpha && entropy(token) >= if hex { 3.0 } else { 4.5 }
}

/// An email address's domain: dot-separated labels of letters, digits and
/// inner hyphens, and a top-level label of letters.
pub fn email_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_issuers() {
        assert!(credit_card(b"4111111111111111"));
        assert!(credit_card(b"5555555555554444"));
        assert!(credit_card(b"378282246310005"));
        assert!(credit_card(b"6011111111111117"));
        assert!(!credit_card(b"4111111111111112"), "Luhn fails");
        assert!(!credit_card(b"1234567812345670"), "no issuer starts with 1");
    }

    #[test]
    fn iban_checks() {
        assert!(iban("DE89 3704 0044 0532 0130 00"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(!iban("GB82WEST12345698765433"), "mod 97 fails");
        assert!(!iban("DE89 3704 0044 0532 0130 0"), "length for DE");
        assert!(!iban("ZZ89370400440532013000"), "no such country");
    }

    #[test]
    fn ssn_rules() {
        assert!(us_ssn(b"123456789"));
        for bad in [
            &b"000123456"[..],
            b"666123456",
            b"912345678",
            b"123006789",
            b"123450000",
            b"111111111",
        ] {
            assert!(!us_ssn(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn addresses_and_phones() {
        assert!(ipv4("192.168.10.1"));
        assert!(!ipv4("256.1.1.1"));
        assert!(!ipv4("3.11.2"));
        assert!(ipv6("2001:db8::8a2e:370:7334"));
        assert!(ipv6("::1"));
        assert!(!ipv6("12:30:45"));
        let us = phonenumber::country::Id::US;
        assert!(phone("(415) 555-2671", us));
        assert!(phone("+44 20 7946 0958", us));
        assert!(!phone("2023-01-15", us));
        assert!(!phone("978-3-16-148410-0", us));
    }

    #[test]
    fn tokens() {
        assert!(jwt("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"));
        assert!(!jwt("eyJub3RhIjoidG9rZW4ifQ.eyJzdWIiOiIxIn0.abcabcabcabc"));
        assert!(high_entropy("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(!high_entropy("aaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!high_entropy("the_quick_brown_fox_jumps"));
        assert!(email_domain("example.co.uk"));
        assert!(!email_domain("localhost"));
        assert!(!email_domain("x.123"));
    }
}

//! Figures as a page shows them: the exact value and the field it is in the JSON answer
//! (`<data value=… data-field=…>`, PROTOCOL §10), beside the text a person reads.

use crate::exact::Int;
use crate::report::Money;

/// One figure on a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fig {
    /// The exact value as the JSON answer has it; empty for an undefined ratio.
    pub value: String,
    /// Its path in the JSON answer of the section's `data-source`, dot-separated.
    pub field: String,
    /// What a person reads.
    pub text: String,
}

pub use crate::exact::grouped;

/// A count: `1,234`.
pub fn count(field: impl Into<String>, n: impl std::fmt::Display) -> Fig {
    let value = n.to_string();
    Fig {
        text: grouped(&value),
        value,
        field: field.into(),
    }
}

/// Minor units as major units with two decimals: `-12,345.67 CNY`.
pub fn money(field: impl Into<String>, minor: &Int, currency: &str) -> Fig {
    let value = minor.to_string();
    let (sign, digits) = match value.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", value.as_str()),
    };
    let padded = format!("{digits:0>3}");
    let (major, cents) = padded.split_at(padded.len() - 2);
    Fig {
        text: format!("{sign}{}.{cents} {currency}", grouped(major)),
        value: value.clone(),
        field: field.into(),
    }
}

/// Every currency of a money map, one figure each (`subsidies_disbursed.CNY`); a dash
/// when the map is empty.
pub fn money_map(field: &str, m: &Money) -> Vec<Fig> {
    m.0.iter()
        .map(|(currency, amount)| money(format!("{field}.{currency}"), amount, currency))
        .collect()
}

/// Basis points as a percentage with two decimals; an undefined ratio has the empty
/// value and reads `n/a`.
pub fn ratio(field: impl Into<String>, bp: &Option<Int>) -> Fig {
    let text = match bp {
        None => "n/a".to_string(),
        Some(v) if v.is_negative() => format!("{v} bp"),
        Some(_) => format!("{}%", crate::report::render::percent(bp)),
    };
    Fig {
        value: bp.as_ref().map(Int::to_string).unwrap_or_default(),
        text,
        field: field.into(),
    }
}

/// A ratio in basis points read as a factor with two decimals (a PUE of `1.42`).
pub fn factor(field: impl Into<String>, bp: &Option<Int>) -> Fig {
    let text = match bp {
        None => "n/a".to_string(),
        Some(v) => {
            let hundredths = v
                .div_floor(&Int::from(100u64))
                .unwrap_or_else(|| unreachable!("100 is not 0"));
            let digits = format!("{:0>3}", hundredths.to_string());
            let (whole, frac) = digits.split_at(digits.len() - 2);
            format!("{whole}.{frac}")
        }
    };
    Fig {
        value: bp.as_ref().map(Int::to_string).unwrap_or_default(),
        text,
        field: field.into(),
    }
}

/// A word from the ledger (a status, a model): its value is itself.
pub fn word(field: impl Into<String>, s: &str) -> Fig {
    Fig {
        value: s.to_string(),
        text: s.to_string(),
        field: field.into(),
    }
}

/// A yes/no figure (JSON `true`/`false`).
pub fn flag(field: impl Into<String>, b: bool) -> Fig {
    Fig {
        value: b.to_string(),
        text: if b { "yes" } else { "no" }.to_string(),
        field: field.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(
            money("x", &Int::from(1_234_567u64), "CNY").text,
            "12,345.67 CNY"
        );
        assert_eq!(money("x", &Int::from(-5i64), "CNY").text, "-0.05 CNY");
        assert_eq!(
            money("x", &Int::from(-123_456_789i64), "CNY").text,
            "-1,234,567.89 CNY"
        );
        assert_eq!(count("x", 1_000_000u64).text, "1,000,000");
        assert_eq!(count("x", -1_000i64).text, "-1,000");
        let r = ratio("x", &Some(Int::from(4392u64)));
        assert_eq!((r.value.as_str(), r.text.as_str()), ("4392", "43.92%"));
        assert_eq!(factor("x", &Some(Int::from(14_249u64))).text, "1.42");
        assert_eq!(factor("x", &Some(Int::from(9_999u64))).text, "0.99");
        let r = ratio("x", &None);
        assert_eq!((r.value.as_str(), r.text.as_str()), ("", "n/a"));
    }
}

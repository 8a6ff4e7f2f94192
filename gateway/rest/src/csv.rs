//! Numbers uploaded as CSV: one number per row, taken from the first column.
//!
//! Row numbers are the rows a spreadsheet shows for the file: every record counts, the
//! header row too, so with a header the first number is row 2. A header is recognised
//! only in the first row, as a first cell with no digit in it ("number", "phone").
//! Blank rows are skipped but still counted, so later rows keep the numbers the user
//! sees. A row whose first cell is empty but whose other cells are not is kept, and
//! voxbridge rejects it as empty.

use crate::error::{ApiError, ApiResult};

/// The numbers of an upload and the file row each came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvNumbers {
    pub numbers: Vec<String>,
    /// `rows[i]` is the 1-based file row of `numbers[i]`.
    pub rows: Vec<u32>,
}

impl CsvNumbers {
    /// The file row of the `n`th (1-based) number sent to voxbridge.
    pub fn file_row(&self, n: u32) -> u32 {
        n.checked_sub(1).and_then(|i| self.rows.get(i as usize)).copied().unwrap_or(n)
    }

    /// voxbridge words in-upload duplicates as "duplicate of row N", N counting the
    /// numbers it was sent; say the file row instead.
    pub fn file_reason(&self, reason: String) -> String {
        match reason.strip_prefix("duplicate of row ").and_then(|n| n.parse::<u32>().ok()) {
            Some(n) => format!("duplicate of row {}", self.file_row(n)),
            None => reason,
        }
    }
}

/// One record: its first cell, and whether any other cell has content.
struct Record {
    first: String,
    rest_blank: bool,
}

/// Splits RFC 4180 CSV (quotes, doubled quotes, CRLF or LF) into records, keeping only
/// the first cell of each.
fn records(text: &str) -> ApiResult<Vec<Record>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut record = Record { first: String::new(), rest_blank: true };
    let mut field = 0usize;
    let mut in_quotes = false;
    let mut open = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        open = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    push(&mut record, field, '"');
                }
                '"' => in_quotes = false,
                c => push(&mut record, field, c),
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => field += 1,
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::replace(&mut record, Record { first: String::new(), rest_blank: true }));
                field = 0;
                open = false;
            }
            c => push(&mut record, field, c),
        }
    }
    if in_quotes {
        return Err(ApiError::invalid(format!("CSV row {}: a quoted value is never closed", out.len() + 1)));
    }
    if open {
        out.push(record);
    }
    Ok(out)
}

fn push(record: &mut Record, field: usize, c: char) {
    if field == 0 {
        record.first.push(c);
    } else if !c.is_whitespace() {
        record.rest_blank = false;
    }
}

/// The numbers in `text`, with their file rows (see the module docs for the counting).
pub fn parse_numbers(text: &str) -> ApiResult<CsvNumbers> {
    let mut out = CsvNumbers::default();
    for (i, record) in records(text)?.into_iter().enumerate() {
        let first = record.first.trim();
        if first.is_empty() && record.rest_blank {
            continue;
        }
        if i == 0 && !first.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let row = u32::try_from(i + 1).map_err(|_| ApiError::invalid("CSV: too many rows"))?;
        out.numbers.push(first.to_string());
        out.rows.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_counts_as_row_one() {
        let n = parse_numbers("phone,name\n+14155550123,Ann\n+1 (415) 555-0124,\"Bo, Jr\"\n").unwrap();
        assert_eq!(n.numbers, ["+14155550123", "+1 (415) 555-0124"]);
        assert_eq!(n.rows, [2, 3]);
    }

    #[test]
    fn without_a_header_the_first_number_is_row_one() {
        let n = parse_numbers("+14155550123\r\n\r\n\"+14155550124\"\r\nnot a number").unwrap();
        assert_eq!(n.numbers, ["+14155550123", "+14155550124", "not a number"]);
        assert_eq!(n.rows, [1, 3, 4], "blank rows are skipped but counted; only row 1 can be a header");
    }

    #[test]
    fn a_row_with_an_empty_first_cell_is_kept_for_voxbridge_to_reject() {
        let n = parse_numbers("\u{feff}number\n,Ann\n,,\n").unwrap();
        assert_eq!((n.numbers, n.rows), (vec![String::new()], vec![2]));
    }

    #[test]
    fn rows_and_duplicate_reasons_map_back_to_the_file() {
        let n = parse_numbers("number\n+14155550123\n\n+14155550123\n").unwrap();
        assert_eq!(n.file_row(2), 4);
        assert_eq!(n.file_reason("duplicate of row 1".into()), "duplicate of row 2");
        assert_eq!(n.file_reason("has no leading '+'".into()), "has no leading '+'");
    }

    #[test]
    fn an_unclosed_quote_is_refused() {
        let e = parse_numbers("number\n\"+1415").unwrap_err();
        assert_eq!(e.message(), "CSV row 2: a quoted value is never closed");
    }
}

/// Arbitrary uploads: never a panic, every number comes with its file row, and a
/// refusal names the CSV row.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Text made of the characters CSV gives meaning to, plus anything else.
    fn csv_like() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("\"".to_string()),
                Just(",".to_string()),
                Just("\r\n".to_string()),
                Just("\n".to_string()),
                Just("\r".to_string()),
                Just("\u{feff}".to_string()),
                "[+0-9 ()-]{1,12}",
                ".{1,4}",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    fn check(text: &str) -> Result<(), TestCaseError> {
        match parse_numbers(text) {
            Ok(n) => {
                prop_assert_eq!(n.numbers.len(), n.rows.len());
                prop_assert!(n.rows.windows(2).all(|w| w[0] < w[1]), "rows ascend: {:?}", n.rows);
                prop_assert!(n.rows.first().is_none_or(|r| *r >= 1));
            }
            Err(e) => prop_assert!(e.message().starts_with("CSV"), "unclear error {:?}", e.message()),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_parses_or_names_the_row(text in ".{0,300}") {
            check(&text)?;
        }

        #[test]
        fn csv_shaped_text_parses_or_names_the_row(text in csv_like()) {
            check(&text)?;
        }
    }
}

//! Numbers uploaded as CSV: one number per row, taken from the first column.
//!
//! Row numbers are the rows a spreadsheet shows for the file: every record counts, the
//! header row too, so with a header the first number is row 2. A header is recognised
//! only in the first row, as a first cell with no digit in it ("number", "phone").
//! Blank rows are skipped but still counted, so later rows keep the numbers the user
//! sees. A row whose first cell is empty but whose other cells are not is kept, and
//! voxbridge rejects it as empty.
//!
//! Quoting follows RFC 4180 strictly, since a stray quote would otherwise swallow the
//! rows after it without a word: a quote inside an unquoted value, text after a closing
//! quote or a quote never closed refuses the whole file, naming the line and column an
//! editor shows. The file is parsed whole before anything is sent to voxbridge, so a bad
//! line anywhere adds nothing.

use vox_domain::campaign::echo;

use crate::error::{ApiError, ApiResult};

/// The numbers of an upload and the file row each came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvNumbers {
    pub numbers: Vec<String>,
    /// `rows[i]` is the 1-based file row of `numbers[i]`.
    pub rows: Vec<u32>,
}

/// One record: its first cell, and whether any other cell has content.
struct Record {
    first: String,
    rest_blank: bool,
}

impl Record {
    fn new() -> Self {
        Record { first: String::new(), rest_blank: true }
    }

    fn push(&mut self, field: usize, c: char) {
        if field == 0 {
            self.first.push(c);
        } else if !c.is_whitespace() {
            self.rest_blank = false;
        }
    }
}

/// Where the parser is inside a field.
#[derive(Clone, Copy, PartialEq)]
enum Field {
    /// Nothing but spaces yet: a quote here opens a quoted value.
    Start,
    Unquoted,
    Quoted,
    /// After the closing quote: only spaces, a comma or the end of the row may follow.
    Closed,
}

/// A position in the file as an editor shows it (1-based line and column).
#[derive(Clone, Copy)]
struct At {
    line: usize,
    column: usize,
}

fn refuse(at: At, why: &str) -> ApiError {
    ApiError::invalid(format!("CSV line {}, column {}: {why}; nothing was added", at.line, at.column))
}

/// Splits RFC 4180 CSV (quotes, doubled quotes, CRLF or LF) into records, keeping only
/// the first cell of each.
fn records(text: &str) -> ApiResult<Vec<Record>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut record = Record::new();
    let mut field = 0usize;
    let mut state = Field::Start;
    let mut open = false;
    let mut at = At { line: 1, column: 0 };
    let mut quote_opened = at;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        at.column += 1;
        open = true;
        let newline = c == '\n' || c == '\r';
        if state == Field::Quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    at.column += 1;
                    record.push(field, '"');
                }
                '"' => state = Field::Closed,
                c => record.push(field, c),
            }
            if newline && !(c == '\r' && chars.peek() == Some(&'\n')) {
                at = At { line: at.line + 1, column: 0 };
            }
            continue;
        }
        match c {
            '"' if state == Field::Start => {
                state = Field::Quoted;
                quote_opened = at;
            }
            '"' if state == Field::Unquoted => {
                return Err(refuse(
                    at,
                    "a quote inside an unquoted value; put the whole value in quotes and double the quotes inside it",
                ));
            }
            ',' => {
                field += 1;
                state = Field::Start;
            }
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::replace(&mut record, Record::new()));
                field = 0;
                state = Field::Start;
                open = false;
                at = At { line: at.line + 1, column: 0 };
            }
            ' ' | '\t' if state != Field::Unquoted => {
                if state == Field::Start {
                    record.push(field, c);
                }
            }
            _ if state == Field::Closed => {
                return Err(refuse(
                    at,
                    "text after a closing quote; a quoted value ends at a comma or the end of the row",
                ));
            }
            c => {
                state = Field::Unquoted;
                record.push(field, c);
            }
        }
    }
    if state == Field::Quoted {
        return Err(refuse(quote_opened, "a quoted value that opens here is never closed"));
    }
    if open {
        out.push(record);
    }
    Ok(out)
}

/// The numbers in `text`, with their file rows (see the module docs for the counting).
/// A first cell longer than any phone number is cut (voxbridge rejects it, echoing the
/// start), so one batch of numbers stays small whatever the file holds.
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
        out.numbers.push(echo(first));
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
    fn stray_quotes_refuse_the_file_naming_line_and_column() {
        let e = parse_numbers("number\n+14155550123\n+1415555\"0124,Bo\n").unwrap_err();
        assert_eq!(
            e.message(),
            "CSV line 3, column 9: a quote inside an unquoted value; put the whole value in quotes and double \
             the quotes inside it; nothing was added"
        );
        let e = parse_numbers("+14155550123,\"Bo\" Jr\n").unwrap_err();
        assert!(e.message().starts_with("CSV line 1, column 19: text after a closing quote"), "{}", e.message());
        // A quoted value may hold commas, newlines and doubled quotes; lines still count.
        let n =
            parse_numbers("number,note\n+14155550123,\"a, \"\"b\"\"\nc\"\n\"+14155550124\" ,x\n  \"+14155550125\"\n")
                .unwrap();
        assert_eq!(n.numbers, ["+14155550123", "+14155550124", "+14155550125"]);
        assert_eq!(n.rows, [2, 3, 4]);
        let e = parse_numbers("number,note\n+14155550123,\"a\nb\"\n+14155550124,\"x\"y\n").unwrap_err();
        assert!(e.message().starts_with("CSV line 4, column 17: text after a closing quote"), "{}", e.message());
    }

    #[test]
    fn long_cells_are_cut() {
        let n = parse_numbers(&format!("+1{}\n", "4".repeat(10_000))).unwrap();
        assert_eq!(n.numbers[0].chars().count(), vox_domain::campaign::MAX_NUMBER_INPUT_CHARS + 1);
        assert!(n.numbers[0].ends_with('…'));
    }

    #[test]
    fn an_unclosed_quote_is_refused_where_it_opens() {
        let e = parse_numbers("number\n+14155550123, \"+1415\n\n").unwrap_err();
        assert_eq!(
            e.message(),
            "CSV line 2, column 15: a quoted value that opens here is never closed; nothing was added"
        );
    }
}

/// Arbitrary uploads: never a panic, every number comes with its file row, and a
/// refusal names the CSV line.
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

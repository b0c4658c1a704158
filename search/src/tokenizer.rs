//! The catalog's text analysis, for listings and queries alike: words of letters and digits in
//! lower case, and written Chinese (and Japanese and Korean) cut into overlapping pairs of
//! characters, each character also standing alone.
//!
//! Chinese is written without spaces, and a dictionary segmenter cuts the same characters
//! differently in a listing and in a query (质谱 | 联用仪 in one, 质谱仪 in the other), so
//! nothing a query names can be missed, a run of such characters is indexed as its bigrams and
//! unigrams at the positions of its characters: bigram `c[i]c[i+1]` and unigram `c[i]` both at
//! position `i`. A query's run of two or more characters is then looked up as the phrase of its
//! bigrams at consecutive positions, which matches exactly the listings whose text holds that
//! run, as a substring search would; one character alone is looked up as its unigram.
//! `benches/src/bin/tokenizer_recall.rs` compares this with jieba's segmentation on recall.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name under which the index registers [`CatalogTokenizer`].
pub const CATALOG_TOKENIZER: &str = "vledger_catalog";

/// Most characters of one word kept (longer words are cut, as no listing word is longer).
const MAX_WORD_CHARS: usize = 64;

/// Whether `c` is written without spaces between words: Han ideographs, kana, Hangul, and
/// the CJK symbols that go with them are not (those are punctuation and separate).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F  // CJK Extensions B to F, Compatibility Supplement
    )
}

/// A full-width ASCII form (ＥＭＣ, ２０２６) as its ASCII letter or digit, then lower case.
fn fold(c: char, out: &mut String) {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    out.extend(c.to_lowercase());
}

/// One piece of text as the analysis sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// Letters and digits, folded to lower case.
    Word(String),
    /// Consecutive CJK characters.
    Cjk(Vec<char>),
}

/// Splits text into words and CJK runs; everything else (spaces, punctuation, symbols)
/// separates them.
pub fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut word_chars = 0;
    let mut cjk = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
                word_chars = 0;
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            if word_chars < MAX_WORD_CHARS {
                fold(c, &mut word);
                word_chars += 1;
            }
        } else {
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
                word_chars = 0;
            }
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
        }
    }
    if !word.is_empty() {
        out.push(Run::Word(word));
    }
    if !cjk.is_empty() {
        out.push(Run::Cjk(cjk));
    }
    out
}

/// The tokens of a listing's text, as `(position, token)`.
pub fn index_tokens(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut position = 0;
    for run in runs(text) {
        match run {
            Run::Word(word) => {
                out.push((position, word));
                position += 1;
            }
            Run::Cjk(chars) => {
                for (i, c) in chars.iter().enumerate() {
                    if let Some(next) = chars.get(i + 1) {
                        out.push((position, [*c, *next].iter().collect()));
                    }
                    out.push((position, c.to_string()));
                    position += 1;
                }
            }
        }
    }
    out
}

/// What one piece of a query looks up: one token, or a phrase of tokens at consecutive
/// positions.
pub fn query_tokens(run: &Run) -> Vec<String> {
    match run {
        Run::Word(word) => vec![word.clone()],
        Run::Cjk(chars) if chars.len() == 1 => vec![chars[0].to_string()],
        Run::Cjk(chars) => chars.windows(2).map(|w| w.iter().collect()).collect(),
    }
}

/// [`index_tokens`] as a tantivy tokenizer.
#[derive(Clone, Default)]
pub struct CatalogTokenizer {
    token: Token,
}

/// The tokens of one text, computed when the stream is made.
pub struct CatalogTokenStream<'a> {
    tokens: std::vec::IntoIter<(usize, String)>,
    token: &'a mut Token,
}

impl Tokenizer for CatalogTokenizer {
    type TokenStream<'a> = CatalogTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        self.token.reset();
        CatalogTokenStream {
            tokens: index_tokens(text).into_iter(),
            token: &mut self.token,
        }
    }
}

impl TokenStream for CatalogTokenStream<'_> {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some((position, text)) => {
                self.token.position = position;
                self.token.text = text;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_width_and_cjk_runs_give_bigrams_and_unigrams() {
        assert_eq!(
            index_tokens("ＥＭＣ检测, Lab-2"),
            vec![
                (0, "emc".to_string()),
                (1, "检测".to_string()),
                (1, "检".to_string()),
                (2, "测".to_string()),
                (3, "lab".to_string()),
                (4, "2".to_string()),
            ]
        );
    }

    #[test]
    fn a_query_run_is_the_phrase_of_its_bigrams_or_one_unigram() {
        let runs = runs("质谱仪 钢 EMC");
        assert_eq!(
            runs.iter().map(query_tokens).collect::<Vec<_>>(),
            vec![
                vec!["质谱".to_string(), "谱仪".to_string()],
                vec!["钢".to_string()],
                vec!["emc".to_string()]
            ]
        );
    }

    #[test]
    fn punctuation_of_cjk_text_separates_runs() {
        assert_eq!(
            runs("检测，认证。"),
            vec![Run::Cjk(vec!['检', '测']), Run::Cjk(vec!['认', '证'])]
        );
    }
}

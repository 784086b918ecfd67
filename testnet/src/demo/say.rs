//! The narrator: plain sentences for a person watching the demo, wrapped to a readable width.
//!
//! Narration is best effort. If the output goes away (a closed pipe, say) the narrator falls
//! silent and the demo carries on, since its verdict does not depend on being watched.

use std::io::Write;

/// Column at which paragraphs wrap.
const WIDTH: usize = 100;

/// Writes the demo's story to a sink.
pub(crate) struct Say {
    out: Box<dyn Write + Send>,
    silent: bool,
}

impl std::fmt::Debug for Say {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Say")
            .field("silent", &self.silent)
            .finish_non_exhaustive()
    }
}

impl Say {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out, silent: false }
    }

    /// One line, as is.
    pub(crate) fn line(&mut self, text: &str) {
        if self.silent {
            return;
        }
        if writeln!(self.out, "{text}")
            .and_then(|()| self.out.flush())
            .is_err()
        {
            self.silent = true;
        }
    }

    /// An empty line.
    pub(crate) fn blank(&mut self) {
        self.line("");
    }

    /// A step heading.
    pub(crate) fn step(&mut self, number: u8, title: &str) {
        self.blank();
        self.line(&format!("Step {number}. {title}"));
    }

    /// A paragraph wrapped at [`WIDTH`], every line indented by `indent` spaces.
    pub(crate) fn para(&mut self, indent: usize, text: &str) {
        self.hanging(indent, indent, text);
    }

    /// A paragraph whose first line starts at `first` spaces and the rest at `rest`.
    pub(crate) fn hanging(&mut self, first: usize, rest: usize, text: &str) {
        for line in wrap(first, rest, text) {
            self.line(&line);
        }
    }
}

/// Greedy word wrap; a word longer than the width (an id, a hash) gets a line of its own.
fn wrap(first: usize, rest: usize, text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = " ".repeat(first);
    let mut empty = true;
    for word in text.split_whitespace() {
        let fits = current.chars().count() + 1 + word.chars().count() <= WIDTH;
        if !empty && !fits {
            lines.push(std::mem::replace(&mut current, " ".repeat(rest)));
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(word);
        empty = false;
    }
    if !empty {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_lines_within_width_and_words_whole() {
        let text = "word ".repeat(60);
        let lines = wrap(2, 4, &text);
        assert!(lines.len() > 2);
        assert!(lines[0].starts_with("  word"));
        assert!(lines[1].starts_with("    word"));
        for l in &lines {
            assert!(l.chars().count() <= WIDTH, "{l:?}");
            assert!(!l.ends_with(' '));
        }
        assert_eq!(lines.join(" ").split_whitespace().count(), 60);
    }

    #[test]
    fn a_long_word_gets_its_own_line() {
        let long = "x".repeat(WIDTH + 10);
        let lines = wrap(0, 0, &format!("a {long} b"));
        assert_eq!(lines, vec!["a".to_string(), long, "b".to_string()]);
    }
}

//! `report.html`: the same report as `report.md`, in one self-contained file — the plots' SVGs inlined, no links
//! to anything — to mail or attach. It converts only the Markdown this module's caller writes (headings, paragraphs,
//! bullet lists, pipe tables, images with a caption line, `**bold**` and `` `code` ``), not Markdown in general.

use anyhow::{Context, Result};
use std::path::Path;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `**bold**` and `` `code` `` inside an escaped line.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let mut rest = escape(s);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**").filter(|_| !code) {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = r.to_string();
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r.to_string();
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = rest[c.len_utf8()..].to_string();
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</b>");
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| inline(c.trim()))
        .collect()
}

/// An image line `![caption](name.png)`: the SVG beside it, inlined.
fn figure(line: &str, dir: &Path) -> Result<Option<String>> {
    let Some(rest) = line.strip_prefix("![") else {
        return Ok(None);
    };
    let Some((caption, target)) = rest.split_once("](") else {
        return Ok(None);
    };
    let name = target.trim_end_matches(')').trim_end_matches(".png");
    let path = dir.join(format!("{name}.svg"));
    let svg = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} for report.html", path.display()))?;
    let svg = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg.as_str(),
    };
    Ok(Some(format!(
        "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
        inline(caption)
    )))
}

/// Converts the report's Markdown, inlining the SVGs found in `dir`.
pub fn to_html(markdown: &str, dir: &Path) -> Result<String> {
    let mut body = String::new();
    let mut paragraph: Vec<String> = Vec::new();
    let mut list = false;
    let mut table: Vec<Vec<String>> = Vec::new();
    let flush = |body: &mut String,
                 paragraph: &mut Vec<String>,
                 list: &mut bool,
                 table: &mut Vec<Vec<String>>| {
        if !paragraph.is_empty() {
            body.push_str(&format!("<p>{}</p>\n", paragraph.join(" ")));
            paragraph.clear();
        }
        if *list {
            body.push_str("</ul>\n");
            *list = false;
        }
        if !table.is_empty() {
            body.push_str("<table>\n");
            for (i, row) in table.iter().enumerate() {
                let tag = if i == 0 { "th" } else { "td" };
                body.push_str("<tr>");
                for c in row {
                    body.push_str(&format!("<{tag}>{c}</{tag}>"));
                }
                body.push_str("</tr>\n");
            }
            body.push_str("</table>\n");
            table.clear();
        }
    };
    for line in markdown.lines() {
        let t = line.trim_end();
        if t.starts_with('|') {
            if table.is_empty() {
                flush(&mut body, &mut paragraph, &mut list, &mut table);
            }
            // The separator row under the header carries no cells.
            if !t.trim_matches(|c| c == '|' || c == '-').is_empty() {
                table.push(cells(t));
            }
            continue;
        }
        if t.is_empty() {
            flush(&mut body, &mut paragraph, &mut list, &mut table);
        } else if let Some(h) = t.strip_prefix("## ") {
            flush(&mut body, &mut paragraph, &mut list, &mut table);
            body.push_str(&format!("<h2>{}</h2>\n", inline(h)));
        } else if let Some(h) = t.strip_prefix("# ") {
            flush(&mut body, &mut paragraph, &mut list, &mut table);
            body.push_str(&format!("<h1>{}</h1>\n", inline(h)));
        } else if let Some(item) = t.strip_prefix("- ") {
            if !list {
                flush(&mut body, &mut paragraph, &mut list, &mut table);
                body.push_str("<ul>\n");
                list = true;
            }
            body.push_str(&format!("<li>{}</li>\n", inline(item)));
        } else if let Some(fig) = figure(t, dir)? {
            flush(&mut body, &mut paragraph, &mut list, &mut table);
            body.push_str(&fig);
        } else if t.starts_with('*') && t.contains("([SVG](") {
            // The caption line under a figure: the figure already carries its caption.
        } else {
            flush(&mut body, &mut Vec::new(), &mut list, &mut table);
            paragraph.push(inline(t));
        }
    }
    flush(&mut body, &mut paragraph, &mut list, &mut table);
    Ok(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>trainer report</title>\n<style>\n\
         body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}\n\
         table {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}\n\
         th, td {{ border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }}\n\
         th {{ background: #eee; }} td:first-child, th:first-child {{ text-align: left; }}\n\
         figure {{ margin: 1.5em 0; }} figcaption {{ font-style: italic; color: #555; }}\n\
         svg {{ max-width: 100%; height: auto; }}\n</style></head>\n<body>\n{body}</body></html>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_tables_lists_and_inlined_figures() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("loss.svg"),
            "<?xml version=\"1.0\"?>\n<svg width=\"10\"><text>loss</text></svg>",
        )
        .expect("svg");
        let md = "# Title\n\nSome **bold** and `code <x>`.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n\
                  ![Training loss](loss.png)\n\n*Training loss* ([SVG](loss.svg))\n";
        let html = to_html(md, dir.path()).expect("html");
        assert!(html.contains("<h1>Title</h1>"));
        assert!(
            html.contains("<p>Some <b>bold</b> and <code>code &lt;x&gt;</code>.</p>"),
            "{html}"
        );
        assert!(
            html.contains("<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><th>a</th><th>b</th></tr>\n<tr><td>1</td><td>2</td></tr>"),
            "{html}"
        );
        assert!(html.contains(
            "<figure><svg width=\"10\"><text>loss</text></svg><figcaption>Training loss"
        ));
        assert!(
            !html.contains("<?xml") && !html.contains("([SVG]"),
            "{html}"
        );
        assert!(to_html("![x](missing.png)\n", dir.path()).is_err());
    }
}

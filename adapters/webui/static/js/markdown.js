// A Markdown renderer that builds DOM nodes and never parses HTML: every
// piece of text becomes a text node, so tags in a message or a model's
// answer show as the characters they are. It covers what chat answers use:
// paragraphs, line breaks, headings, lists, block quotes, fenced and
// inline code, emphasis, strike-through, rules and links. Links are kept
// only for http:, https: and mailto: URLs; images are shown as links,
// never loaded. Unfinished syntax (an answer still streaming) shows as
// plain text until it is closed.

const fenceRE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const headingRE = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const ruleRE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const quoteRE = /^ {0,3}> ?(.*)$/;
const itemRE = /^( {0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;
const safeURL = /^(https?:\/\/|mailto:)/i;

// renderMarkdown returns a DocumentFragment for text.
export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), frag, 0);
  return frag;
}

function el(tag, ...children) {
  const e = document.createElement(tag);
  e.append(...children);
  return e;
}

function blocks(lines, parent, depth) {
  let i = 0;
  const para = [];
  const endPara = () => {
    if (!para.length) return;
    const p = el("p");
    para.forEach((l, k) => {
      if (k > 0) p.append(el("br"));
      inline(l.trim(), p);
    });
    parent.append(p);
    para.length = 0;
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (line.trim() === "") {
      endPara();
      i++;
    } else if ((m = fenceRE.exec(line))) {
      endPara();
      const fence = m[1];
      const body = [];
      const close = new RegExp("^ {0,3}" + (fence[0] === "`" ? "`" : "~") + "{" + fence.length + ",}\\s*$");
      for (i++; i < lines.length && !close.test(lines[i]); i++) body.push(lines[i]);
      i++; // the closing fence, if any
      const code = el("code", document.createTextNode(body.join("\n")));
      if (m[2]) code.className = "language-" + m[2];
      parent.append(el("pre", code));
    } else if ((m = headingRE.exec(line)) && m[2] !== undefined) {
      endPara();
      const h = el("h" + Math.min(m[1].length + 2, 6));
      inline(m[2], h);
      parent.append(h);
      i++;
    } else if (ruleRE.test(line)) {
      endPara();
      parent.append(el("hr"));
      i++;
    } else if (quoteRE.test(line) && depth < 8) {
      endPara();
      const inner = [];
      while (i < lines.length && (m = quoteRE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      const q = el("blockquote");
      blocks(inner, q, depth + 1);
      parent.append(q);
    } else if ((m = itemRE.exec(line)) && depth < 8) {
      endPara();
      i = list(lines, i, parent, depth);
    } else {
      para.push(line);
      i++;
    }
  }
  endPara();
}

// list renders the list starting at lines[i] and returns the index after it.
function list(lines, i, parent, depth) {
  const first = itemRE.exec(lines[i]);
  const ordered = /\d/.test(first[2]);
  const indent = first[1].length;
  const l = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) l.start = parseInt(first[2], 10);
  while (i < lines.length) {
    const m = itemRE.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const body = [m[3]];
    const cont = m[1].length + m[2].length + 1;
    for (i++; i < lines.length; i++) {
      const line = lines[i];
      if (line.trim() === "") {
        // A blank line ends the item unless an indented line follows.
        if (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1])) {
          body.push("");
          continue;
        }
        break;
      }
      const sub = itemRE.exec(line);
      if (sub && sub[1].length <= indent) break;
      if (!/^\s/.test(line) && !sub) {
        body.push(line); // a lazy continuation of the item's paragraph
        continue;
      }
      body.push(line.replace(new RegExp("^ {0," + Math.max(cont, 2) + "}"), ""));
    }
    const li = el("li");
    if (body.length === 1) inline(body[0], li);
    else blocks(body, li, depth + 1);
    l.append(li);
    while (i < lines.length && lines[i].trim() === "" && i + 1 < lines.length && itemRE.exec(lines[i + 1])?.[1].length === indent) i++;
  }
  parent.append(l);
  return i;
}

// Inline syntax, tried at each position in this order.
const inlineRules = [
  [/^\\([\\`*_{}\[\]()#+\-.!~<>|])/, (m, out) => out.append(m[1])],
  [/^(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/, (m, out) => out.append(el("code", document.createTextNode(m[2].replace(/^ (.*) $/, "$1"))))],
  [/^\*\*(?=\S)([\s\S]*?\S)\*\*/, (m, out) => out.append(nested("strong", m[1]))],
  [/^__(?=\S)([\s\S]*?\S)__(?!\w)/, (m, out, prev) => (/\w/.test(prev) ? false : out.append(nested("strong", m[1])))],
  [/^~~(?=\S)([\s\S]*?\S)~~/, (m, out) => out.append(nested("del", m[1]))],
  [/^\*(?=[^\s*])([\s\S]*?[^\s*])\*(?!\*)/, (m, out) => out.append(nested("em", m[1]))],
  [/^_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/, (m, out, prev) => (/\w/.test(prev) ? false : out.append(nested("em", m[1])))],
  [/^!?\[([^\]\n]*)\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))*)>?(?:\s+"[^"\n]*")?\s*\)/, (m, out) => out.append(link(m[2], m[1] || m[2]))],
  [/^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i, (m, out) => out.append(link(m[1], m[1]))],
  [/^https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"*_~]/i, (m, out, prev) => (/\w/.test(prev) ? false : out.append(link(m[0], m[0])))],
];

function nested(tag, text) {
  const e = el(tag);
  inline(text, e);
  return e;
}

function link(url, label) {
  if (!safeURL.test(url)) return document.createTextNode(label);
  const a = el("a");
  a.href = url;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  inline(label, a);
  return a;
}

// inline appends text's inline content to out.
function inline(text, out) {
  let buf = "";
  let i = 0;
  const flush = () => {
    if (buf) out.append(document.createTextNode(buf));
    buf = "";
  };
  scan: while (i < text.length) {
    const c = text[i];
    if ("\\`*_~[!<h".includes(c)) {
      const rest = text.slice(i);
      for (const [re, render] of inlineRules) {
        const m = re.exec(rest);
        if (!m) continue;
        const frag = document.createDocumentFragment();
        if (render(m, frag, i > 0 ? text[i - 1] : "") === false) continue;
        flush();
        out.append(frag);
        i += m[0].length;
        continue scan;
      }
    }
    buf += c;
    i++;
  }
  flush();
}

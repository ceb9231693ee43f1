// A small Markdown renderer for model replies that builds DOM nodes and sets only text content,
// so nothing the model writes can become HTML: no tags, no attributes, no scripts. It handles
// what chat replies use: paragraphs, headings, lists, fenced code (with a copy button), inline
// code, bold, italics and links (shown as text; the webview never navigates away).

const FENCE_OPEN = /^\s*```\s*([\w+#.-]*)\s*$/;
const FENCE_CLOSE = /^\s*```\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+/;
const NUMBERED = /^\s*\d+[.)]\s+/;
const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s][^*\n]*\*)|(\[[^\]\n]+\]\([^)\s]+\))/g;

function isBlockStart(line: string): boolean {
  return FENCE_OPEN.test(line) || HEADING.test(line) || BULLET.test(line) || NUMBERED.test(line);
}

/** Renders `markdown` into a fragment of safe DOM nodes. An unclosed code fence (a reply still
 * streaming) renders as code so far. */
export function renderMarkdown(markdown: string, doc: Document = document): DocumentFragment {
  const out = doc.createDocumentFragment();
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE_OPEN);
    if (fence) {
      const code: string[] = [];
      for (i++; i < lines.length && !FENCE_CLOSE.test(lines[i]); i++) code.push(lines[i]);
      i++;
      out.appendChild(codeBlock(code.join("\n"), fence[1], doc));
      continue;
    }
    if (!line.trim()) {
      i++;
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      const h = doc.createElement(`h${Math.min(heading[1].length + 2, 6)}`);
      appendInline(h, heading[2], doc);
      out.appendChild(h);
      i++;
      continue;
    }
    const marker = NUMBERED.test(line) ? NUMBERED : BULLET.test(line) ? BULLET : null;
    if (marker) {
      const list = doc.createElement(marker === NUMBERED ? "ol" : "ul");
      for (; i < lines.length && marker.test(lines[i]); i++) {
        const li = doc.createElement("li");
        appendInline(li, lines[i].replace(marker, ""), doc);
        list.appendChild(li);
      }
      out.appendChild(list);
      continue;
    }
    const para: string[] = [];
    for (; i < lines.length && lines[i].trim() && !isBlockStart(lines[i]); i++) para.push(lines[i]);
    const p = doc.createElement("p");
    appendInline(p, para.join("\n"), doc);
    out.appendChild(p);
  }
  return out;
}

/** Inline marks of `text` appended to `parent` as elements holding plain text. */
function appendInline(parent: HTMLElement, text: string, doc: Document) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    appendText(parent, text.slice(last, m.index), doc);
    const [token] = m;
    let el: HTMLElement;
    if (m[1]) {
      el = doc.createElement("code");
      el.textContent = token.slice(1, -1);
    } else if (m[2]) {
      el = doc.createElement("strong");
      el.textContent = token.slice(2, -2);
    } else if (m[3]) {
      el = doc.createElement("em");
      el.textContent = token.slice(1, -1);
    } else {
      const [, label, url] = token.match(/^\[([^\]]+)\]\(([^)]+)\)$/)!;
      el = doc.createElement("span");
      el.className = "link";
      el.title = url;
      el.textContent = label;
    }
    parent.appendChild(el);
    last = m.index! + token.length;
  }
  appendText(parent, text.slice(last), doc);
}

/** Text with its line breaks kept. */
function appendText(parent: HTMLElement, text: string, doc: Document) {
  text.split("\n").forEach((part, k) => {
    if (k > 0) parent.appendChild(doc.createElement("br"));
    if (part) parent.appendChild(doc.createTextNode(part));
  });
}

function codeBlock(code: string, language: string, doc: Document): HTMLElement {
  const box = doc.createElement("div");
  box.className = "code";
  const copy = doc.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  copy.addEventListener("click", async () => {
    await navigator.clipboard.writeText(code);
    copy.textContent = "Copied";
  });
  const pre = doc.createElement("pre");
  const el = doc.createElement("code");
  if (language) el.dataset.language = language;
  el.textContent = code;
  pre.appendChild(el);
  box.append(copy, pre);
  return box;
}

const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";

/** A reply split into its reasoning block (`<think>…</think>`, as reasoning models write it; null
 * when there is none, unfinished while the model still reasons) and its answer. */
export function splitReasoning(text: string): { reasoning: string | null; answer: string } {
  const start = text.indexOf(THINK_OPEN);
  if (start < 0 || text.slice(0, start).trim() !== "") return { reasoning: null, answer: text };
  const body = text.slice(start + THINK_OPEN.length);
  const end = body.indexOf(THINK_CLOSE);
  if (end < 0) return { reasoning: body.trim(), answer: "" };
  return { reasoning: body.slice(0, end).trim(), answer: body.slice(end + THINK_CLOSE.length).replace(/^\s+/, "") };
}

/** Renders a reply: its reasoning, if any, folded away (open when `open`), then its answer as
 * Markdown. An empty reasoning block (thinking turned off) shows nothing. */
export function renderReply(text: string, open = false, doc: Document = document): DocumentFragment {
  const { reasoning, answer } = splitReasoning(text);
  const out = doc.createDocumentFragment();
  if (reasoning) {
    const details = doc.createElement("details");
    details.className = "reasoning";
    details.open = open;
    const summary = doc.createElement("summary");
    summary.textContent = "Reasoning";
    details.append(summary, renderMarkdown(reasoning, doc));
    out.appendChild(details);
  }
  out.appendChild(renderMarkdown(answer, doc));
  return out;
}

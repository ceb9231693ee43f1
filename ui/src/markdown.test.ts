// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { renderMarkdown, renderReply, splitReasoning } from "./markdown";

function html(md: string): HTMLElement {
  const div = document.createElement("div");
  div.appendChild(renderMarkdown(md));
  return div;
}

describe("renderMarkdown", () => {
  it("never turns model text into HTML", () => {
    // Inline HTML in a paragraph, and a line of raw HTML (an HTML block to CommonMark).
    const div = html('Hi <script>alert(1)</script> <img src=x onerror="alert(2)"> **<b>bold</b>**\n\n<div onclick="x()">block</div>');
    expect(div.querySelector("script, img, b, div")).toBeNull();
    expect(div.textContent).toContain("<script>alert(1)</script>");
    expect(div.textContent).toContain('<div onclick="x()">block</div>');
    expect(div.querySelector("strong")!.textContent).toBe("<b>bold</b>");
    expect(div.querySelectorAll("[onerror]").length).toBe(0);
  });

  it("renders paragraphs, headings, lists and inline marks", () => {
    const div = html("# Title\nSome *soft* and **strong** `code`.\n\n- one\n- two\n\n1. first\n2. second");
    expect(div.querySelector("h3")!.textContent).toBe("Title");
    expect(div.querySelector("em")!.textContent).toBe("soft");
    expect(div.querySelector("p code")!.textContent).toBe("code");
    expect([...div.querySelectorAll("ul li")].map((li) => li.textContent)).toEqual(["one", "two"]);
    expect([...div.querySelectorAll("ol li")].map((li) => li.textContent)).toEqual(["first", "second"]);
  });

  it("shows links as text with the address in the tooltip, never as navigation", () => {
    const div = html("See [the docs](javascript:alert`1`) now, or www.example.com.");
    expect(div.querySelector("a")).toBeNull();
    const link = div.querySelector(".link") as HTMLElement;
    expect(link.textContent).toBe("the docs");
    expect(link.title).toBe("javascript:alert`1`");
    // The window opens it on a click, as a link it can reach from the keyboard.
    expect(link.dataset.href).toBe("javascript:alert`1`");
    expect(link.getAttribute("role")).toBe("link");
    expect(link.tabIndex).toBe(0);
    const literal = div.querySelectorAll(".link")[1] as HTMLElement;
    expect([literal.textContent, literal.dataset.href]).toEqual(["www.example.com", "http://www.example.com"]);
  });

  it("renders tables with their alignment, as a table", () => {
    const div = html("| Planet | Moons |\n|:--|--:|\n| Earth | 1 |\n| Mars | **2** |");
    const table = div.querySelector(".table table")!;
    expect([...table.querySelectorAll("thead th")].map((th) => th.textContent)).toEqual(["Planet", "Moons"]);
    const rows = [...table.querySelectorAll("tbody tr")].map((tr) => [...tr.children].map((td) => td.textContent));
    expect(rows).toEqual([["Earth", "1"], ["Mars", "2"]]);
    expect((table.querySelector("tbody td:last-child") as HTMLElement).style.textAlign).toBe("right");
    expect(table.querySelector("tbody strong")!.textContent).toBe("2");
  });

  it("renders nested lists, blockquotes, strikethrough and task lists", () => {
    const div = html("- fruit\n  - apple\n  - pear\n- bread\n\n> a quote\n> on two lines\n\n~~gone~~\n\n- [x] done\n- [ ] to do");
    const outer = div.querySelector("ul")!;
    expect(outer.querySelector(":scope > li > ul")!.textContent).toBe("applepear");
    expect(outer.querySelectorAll(":scope > li").length).toBe(2);
    expect(div.querySelector("blockquote p")!.textContent).toBe("a quoteon two lines");
    expect(div.querySelector("blockquote br")).not.toBeNull();
    expect(div.querySelector("del")!.textContent).toBe("gone");
    const boxes = [...div.querySelectorAll("li input[type=checkbox]")] as HTMLInputElement[];
    expect(boxes.map((b) => [b.checked, b.disabled])).toEqual([[true, true], [false, true]]);
  });

  it("highlights code into spans that still read as the code", () => {
    const source = 'fn main() {\n    let x = "<b>";\n}';
    const div = html("```rust\n" + source + "\n```");
    const code = div.querySelector("pre code") as HTMLElement;
    expect(code.textContent).toBe(source);
    expect(code.querySelector("span.hljs-keyword")!.textContent).toBe("fn");
    expect(code.querySelector("span.hljs-string")!.textContent).toBe('"<b>"');
    expect(code.querySelector("b")).toBeNull();
    const unknown = html("```nosuchlang\n<i>x</i>\n```");
    expect(unknown.querySelector("pre code")!.textContent).toBe("<i>x</i>");
    expect(unknown.querySelector("pre code span, i")).toBeNull();
  });

  it("keeps code blocks verbatim with a copy button, even while the fence is still open", () => {
    const done = html("Run:\n```rust\nfn main() { println!(\"<hi>\"); }\n```\nDone.");
    const code = done.querySelector(".code pre code") as HTMLElement;
    expect(code.textContent).toBe('fn main() { println!("<hi>"); }');
    expect(code.dataset.language).toBe("rust");
    expect(done.querySelector(".code button.copy")!.textContent).toBe("Copy");
    expect(done.querySelector("p:last-child")!.textContent).toBe("Done.");
    const streaming = html("```\nlet x = 1;\nlet y");
    expect(streaming.querySelector("pre code")!.textContent).toBe("let x = 1;\nlet y");
  });

  it("re-rendering a growing reply gives the same structure as rendering it whole", () => {
    const reply = "Paris is **the capital**.\n\n- It has `2` airports.";
    let shown = "";
    const div = document.createElement("div");
    for (const piece of reply.match(/.{1,4}/gs)!) {
      shown += piece;
      div.replaceChildren(renderMarkdown(shown));
    }
    expect(div.innerHTML).toBe(html(reply).innerHTML);
  });
});

describe("renderReply", () => {
  it("folds a reasoning block away and shows the answer", () => {
    const div = document.createElement("div");
    div.appendChild(renderReply("<think>\nThe user asks about **France**.\n</think>\n\nParis."));
    const details = div.querySelector("details.reasoning") as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect(details.querySelector("strong")!.textContent).toBe("France");
    expect(div.querySelector(":scope > p")!.textContent).toBe("Paris.");
  });

  it("shows reasoning still streaming, and nothing for an empty block or none", () => {
    expect(splitReasoning("<think>first, the")).toEqual({ reasoning: "first, the", answer: "" });
    expect(splitReasoning("<think>\n\n</think>\n\nParis.")).toEqual({ reasoning: "", answer: "Paris." });
    expect(splitReasoning("Use <think> tags.")).toEqual({ reasoning: null, answer: "Use <think> tags." });
    const div = document.createElement("div");
    div.appendChild(renderReply("<think></think>Paris.", true));
    expect(div.querySelector("details")).toBeNull();
  });
});

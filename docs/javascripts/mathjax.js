// MathJax 3, served by this site (docs/_hooks/mathjax.py bundles it from npm: no network needed).
// It typesets two kinds of container and nothing else: pymdownx.arithmatex's spans on the
// Markdown and API pages (\( \) and \[ \]), and the notebooks' Markdown cells, which keep
// Jupyter's $...$ and $$...$$.
const MATH_CONTAINERS = ".arithmatex, .jp-MarkdownOutput";

window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  startup: {
    typeset: false, // not the whole page: code cells and outputs may hold "$" that is not math
    pageReady() {
      return MathJax.startup.defaultPageReady().then(() => {
        // Typeset now and whenever mkdocs-material swaps the page's content.
        document$.subscribe(() => {
          MathJax.typesetClear();
          MathJax.texReset();
          MathJax.typesetPromise(document.querySelectorAll(MATH_CONTAINERS));
        });
      });
    },
  },
};

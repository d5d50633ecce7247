// MathJax settings for pymdownx.arithmatex (generic mode).  MathJax itself is loaded from unpkg (mkdocs.yml):
// offline, the formulas read as their TeX source.
window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
};

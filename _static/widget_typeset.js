// The explorers' live widgets (ipywidgets' html-manager) typeset their labels with the MathJax 2
// API, MathJax.Hub.Queue; the book loads MathJax 3, which has no Hub, so every label threw
// "Cannot read properties of undefined (reading 'Queue')". This gives whichever MathJax object
// the page holds (the configuration first, MathJax 3 once it replaces it) a Hub whose Queue
// typesets with MathJax 3's typesetPromise.
(function () {
  "use strict";
  function withHub(mathjax) {
    if (mathjax && typeof mathjax === "object" && !mathjax.Hub) {
      mathjax.Hub = {
        Queue: function (job) {
          var element = Array.isArray(job) ? job[2] : undefined;
          var mj = window.MathJax;
          if (element && mj && typeof mj.typesetPromise === "function") {
            mj.typesetPromise([element]).catch(function () {});
          }
        },
      };
    }
    return mathjax;
  }
  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); },
  });
})();

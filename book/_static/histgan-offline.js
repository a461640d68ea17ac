// Loaded between require.js and the ipywidgets HTML manager (nb_ipywidgets_js in _config.yml).
// 1. The manager finds its font files next to its require.js module URL; map that URL onto the
//    copy the book serves (_static/offline/html-manager/) instead of a path beside each page.
// 2. The manager typesets widget labels with MathJax 2's MathJax.Hub.Queue; the book loads
//    MathJax 3, which has no Hub: give every MathJax object a Hub whose Queue typesets with v3.
(function () {
  var here = document.currentScript.src.replace(/[^\/]*$/, "");  // .../_static/
  window.require.config({paths: {"@jupyter-widgets/html-manager/dist": here + "offline/html-manager"}});

  function typeset(el, tries) {
    var mj = window.MathJax;
    if (mj && mj.typesetPromise && mj.startup && mj.startup.promise) {
      return mj.startup.promise.then(function () { return mj.typesetPromise(el ? [el] : undefined); });
    }
    if (tries > 0) setTimeout(function () { typeset(el, tries - 1); }, 100);  // MathJax 3 still loading
  }
  function withHub(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      Object.defineProperty(mj, "Hub", {enumerable: false, configurable: true,
        value: {Queue: function (job) { return typeset(job && job[2], 100); }}});
    }
    return mj;
  }
  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {configurable: true, enumerable: true,
    get: function () { return current; }, set: function (value) { current = withHub(value); }});
})();

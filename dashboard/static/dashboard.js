// Ferry dashboard: reloads the page every data-refresh seconds while the
// box in the header is ticked, unless the reader is typing in a form.
// Everything works without it.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh"));
  var box = document.getElementById("autorefresh");
  if (!box || !(seconds > 0)) {
    return;
  }
  var key = "ferry-dashboard-autorefresh";
  try {
    box.checked = window.sessionStorage.getItem(key) !== "off";
  } catch (e) { /* storage may be disabled */ }
  box.parentNode.hidden = false;
  box.addEventListener("change", function () {
    try {
      window.sessionStorage.setItem(key, box.checked ? "on" : "off");
    } catch (e) { /* storage may be disabled */ }
  });
  function tick() {
    var typing = document.activeElement && document.activeElement.form && document.activeElement.form.method === "get";
    if (box.checked && !typing && document.visibilityState !== "hidden") {
      // The notice of a finished action is not shown again.
      var url = new URL(window.location.href);
      url.searchParams.delete("done");
      window.location.replace(url.toString());
      return;
    }
    window.setTimeout(tick, seconds * 1000);
  }
  window.setTimeout(tick, seconds * 1000);
})();

// Confirm destructive actions, and refresh live pages on request. Everything works without it.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

for (const box of document.querySelectorAll("input[data-autorefresh]")) {
  const key = "jobfleet:autorefresh:" + location.pathname;
  box.checked = localStorage.getItem(key) === "1";
  let timer = null;
  const arm = () => {
    clearTimeout(timer);
    if (box.checked) timer = setTimeout(() => location.reload(), Number(box.dataset.autorefresh) * 1000);
  };
  box.addEventListener("change", () => { localStorage.setItem(key, box.checked ? "1" : "0"); arm(); });
  arm();
}

// The connection indicator: connecting / connected / reconnecting in Ns / offline.

const LABELS = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  offline: "Offline: waiting for the network",
};

export class StatusView {
  constructor(conn) {
    this.conn = conn;
    this.root = document.getElementById("status");
    this.text = document.getElementById("status-text");
    this.retry = document.getElementById("reconnect-now");
    this.timer = null;
    this.retry.addEventListener("click", () => this.conn.connectNow());
  }

  render(status) {
    clearInterval(this.timer);
    this.timer = null;
    this.root.dataset.state = status.state;
    this.retry.hidden = !(status.state === "reconnecting" && status.retryAt) && status.state !== "closed";
    if (status.state === "reconnecting" && status.retryAt) {
      const tick = () => {
        const seconds = Math.max(1, Math.ceil((status.retryAt - Date.now()) / 1000));
        this.text.textContent = `Reconnecting in ${seconds}s`;
      };
      tick();
      this.timer = setInterval(tick, 1000);
    } else if (status.state === "reconnecting") {
      this.text.textContent = "Reconnecting…";
    } else if (status.state === "closed") {
      this.text.textContent = `Disconnected: ${status.reason}`;
    } else {
      this.text.textContent = LABELS[status.state] || status.state;
    }
  }
}

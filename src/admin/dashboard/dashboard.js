// coremq dashboard (see index.html): polls the JSON admin API (docs/API.md) - /api/v1/stats
// every second for the tiles and charts, the clients and retained topics every few seconds -
// and disconnects clients with DELETE /api/v1/clients/{id}. Charts use Debian's Chart.js,
// served by the broker at /chart.min.js; without it the numbers still show.
'use strict';

const POINTS = 60;             // one minute of history at one sample a second
const STATS_EVERY_MS = 1000;
const LISTS_EVERY_MS = 3000;

const byId = (id) => document.getElementById(id);
const format = (n) => (n >= 1e6 ? (n / 1e6).toFixed(2) + 'M' : n >= 1e4 ? (n / 1e3).toFixed(1) + 'k' : String(Math.round(n)));

function makeChart(id, datasets) {
  if (typeof Chart === 'undefined') return null;
  return new Chart(byId(id), {
    type: 'line',
    data: { labels: new Array(POINTS).fill(''), datasets: datasets.map((d) => ({
      label: d.label, borderColor: d.color, backgroundColor: d.color, data: new Array(POINTS).fill(null),
      pointRadius: 0, borderWidth: 2, tension: 0.2 })) },
    options: { animation: false, responsive: true, maintainAspectRatio: false,
               scales: { y: { beginAtZero: true } }, plugins: { legend: { position: 'bottom' } } },
  });
}

const ratesChart = makeChart('rates-chart', [{ label: 'in / s', color: '#2563eb' }, { label: 'out / s', color: '#16a34a' }]);
const connectionsChart = makeChart('connections-chart', [{ label: 'connections', color: '#9333ea' }]);

function push(chart, values) {
  if (!chart) return;
  chart.data.datasets.forEach((dataset, i) => { dataset.data.push(values[i]); dataset.data.shift(); });
  chart.data.labels.push(new Date().toLocaleTimeString()); chart.data.labels.shift();
  chart.update('none');
}

function setStatus(text, bad) {
  const status = byId('status');
  status.textContent = text;
  status.className = bad ? 'status error' : 'status';
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ cache: 'no-store' }, options || {}));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

let previous = null;
async function refreshStats() {
  try {
    const stats = await api('/api/v1/stats');
    const total = stats.total;
    const now = performance.now();
    const dropped = total.qos0_dropped_slow_consumer + total.messages_dropped_queue_full + total.qos0_dropped_offline;
    byId('connections').textContent = format(total.connections);
    byId('sessions').textContent = format(total.sessions) + ' (' + format(total.sessions_online) + ')';
    byId('messages-received').textContent = String(total.messages_received);
    byId('messages-delivered').textContent = String(total.messages_delivered);
    byId('messages-dropped').textContent = format(dropped);
    byId('shards').textContent = String(stats.shard_count);
    if (previous) {
      const seconds = Math.max((now - previous.at) / 1000, 0.001);
      const rateIn = Math.max(0, total.messages_received - previous.received) / seconds;
      const rateOut = Math.max(0, total.messages_delivered - previous.delivered) / seconds;
      byId('rate-in').textContent = format(rateIn);
      byId('rate-out').textContent = format(rateOut);
      push(ratesChart, [rateIn, rateOut]);
      push(connectionsChart, [total.connections]);
    }
    previous = { at: now, received: total.messages_received, delivered: total.messages_delivered };
    setStatus('live · updated ' + new Date().toLocaleTimeString(), false);
  } catch (error) {
    setStatus('cannot read /api/v1/stats: ' + error.message, true);
  }
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function refreshClients() {
  const prefix = byId('client-search').value;
  try {
    const page = await api('/api/v1/clients?limit=100' + (prefix ? '&prefix=' + encodeURIComponent(prefix) : ''));
    const body = byId('clients').tBodies[0];
    body.replaceChildren();
    for (const client of page.clients) {
      const row = body.insertRow();
      row.dataset.clientId = client.client_id;
      cell(row, client.client_id, 'client-id');
      cell(row, String(client.shard));
      cell(row, client.connected ? 'online' : 'offline');
      cell(row, client.connection ? client.connection.address : '');
      cell(row, client.connection ? client.connection.protocol : '');
      cell(row, client.username === null ? '' : client.username);
      cell(row, String(client.session.subscriptions));
      cell(row, String(client.session.queued_messages));
      cell(row, String(client.session.inflight_messages));
      const button = document.createElement('button');
      button.className = 'disconnect';
      button.textContent = client.connected ? 'disconnect' : 'end session';
      button.addEventListener('click', () => disconnect(client.client_id, !client.connected));
      row.insertCell().appendChild(button);
    }
    byId('client-count').textContent = page.clients.length + (page.next_cursor ? '+' : '') + ' shown';
  } catch (error) {
    setStatus('cannot read /api/v1/clients: ' + error.message, true);
  }
}

async function disconnect(clientId, discardSession) {
  try {
    await api('/api/v1/clients/' + encodeURIComponent(clientId) + (discardSession ? '?discard_session=1' : ''),
              { method: 'DELETE' });
  } catch (error) {
    setStatus('disconnect ' + clientId + ': ' + error.message, true);
  }
  refreshClients();
}

// The payload as text when it is printable UTF-8, else as hex.
function showPayload(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (!/[\u0000-\u0008\u000e-\u001f]/.test(text)) return text;
  } catch (ignored) { /* not UTF-8 */ }
  return Array.from(bytes.slice(0, 256), (b) => b.toString(16).padStart(2, '0')).join(' ') + (bytes.length > 256 ? ' …' : '');
}

async function refreshTopics() {
  const filter = byId('topic-search').value;
  try {
    const page = await api('/api/v1/topics?retained=1&limit=200');
    const body = byId('topics').tBodies[0];
    body.replaceChildren();
    for (const topic of page.topics) {
      if (filter && !topic.topic.includes(filter)) continue;
      const row = body.insertRow();
      cell(row, topic.topic, 'topic');
      cell(row, String(topic.qos));
      cell(row, String(topic.size));
      cell(row, showPayload(topic.payload_base64), 'payload');
    }
  } catch (error) {
    setStatus('cannot read /api/v1/topics: ' + error.message, true);
  }
}

async function refreshLogs() {
  try {
    const recent = await api('/api/v1/logs?limit=100');
    const lines = recent.lines.slice().reverse();  // newest first
    if (recent.dropped > 0) lines.unshift('(' + recent.dropped + ' lines dropped: the log buffer was full)');
    byId('logs').textContent = lines.length ? lines.join('\n') : '(no log lines kept: the log thread is not running)';
  } catch (error) {
    setStatus('cannot read /api/v1/logs: ' + error.message, true);
  }
}

byId('client-search').addEventListener('input', refreshClients);
byId('topic-search').addEventListener('input', refreshTopics);
refreshStats();
refreshClients();
refreshTopics();
refreshLogs();
setInterval(refreshStats, STATS_EVERY_MS);
setInterval(() => { refreshClients(); refreshTopics(); refreshLogs(); }, LISTS_EVERY_MS);

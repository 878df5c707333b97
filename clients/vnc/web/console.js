// The vgpu console page: one scanout of the VM through noVNC, over the
// websocket vgpu-vnc serves beside this page (/vnc/<scanout>).
//   ?scanout=N   which scanout (default 0)
// window.vgpuConsole exposes the state for tests and automation.
import RFB from '/novnc/core/rfb.js';

const params = new URLSearchParams(location.search);
const scanout = Number.parseInt(params.get('scanout') || '0', 10);
const stateEl = document.getElementById('state');
const cadButton = document.getElementById('cad');
const scaleBox = document.getElementById('scale');
const login = document.getElementById('login');
const status = { state: 'connecting', connects: 0, width: 0, height: 0, rfb: null };
window.vgpuConsole = status;

let retryMs = 250;
let password = null;

function setState(state, detail) {
  status.state = state;
  stateEl.textContent = detail ? `${state}: ${detail}` : state;
  stateEl.className = `state ${state}`;
  cadButton.disabled = state !== 'connected';
}

function connect() {
  setState('connecting');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}/vnc/${scanout}`;
  const options = password === null ? {} : { credentials: { password } };
  const rfb = new RFB(document.getElementById('screen'), url, options);
  status.rfb = rfb;
  rfb.scaleViewport = scaleBox.checked;
  rfb.resizeSession = false;
  rfb.addEventListener('connect', () => {
    status.connects += 1;
    retryMs = 250;
    setState('connected');
    rfb.focus();  // keys go to the guest at once, no click needed first
  });
  rfb.addEventListener('desktopname', (e) => {
    document.getElementById('name').textContent = e.detail.name;
    document.title = e.detail.name;
  });
  rfb.addEventListener('credentialsrequired', () => {
    login.hidden = false;
    document.getElementById('password').focus();
  });
  rfb.addEventListener('securityfailure', (e) => {
    password = null;
    setState('disconnected', e.detail.reason || 'wrong password');
  });
  rfb.addEventListener('disconnect', (e) => {
    status.rfb = null;
    setState('disconnected', e.detail.clean ? '' : 'connection lost');
    if (!login.hidden) return;  // waiting for a password
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  });
}

login.addEventListener('submit', (e) => {
  e.preventDefault();
  password = document.getElementById('password').value;
  login.hidden = true;
  if (status.rfb) {
    status.rfb.sendCredentials({ password });
  } else {
    connect();
  }
});
// After a button of the page, keys go back to the guest.
cadButton.addEventListener('click', () => {
  if (!status.rfb) return;
  status.rfb.sendCtrlAltDel();
  status.rfb.focus();
});
scaleBox.addEventListener('change', () => {
  if (!status.rfb) return;
  status.rfb.scaleViewport = scaleBox.checked;
  status.rfb.focus();
});
document.getElementById('fullscreen').addEventListener('click', () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen();
});

// The framebuffer as the browser shows it (noVNC's canvas at its own size).
status.canvas = () => document.querySelector('#screen canvas');
connect();

/** The service's event stream over Jupyter's WebSocket proxy, reconnecting from the last offset. */

import { ISignal, Signal } from '@lumino/signaling';

import { AiflowApi } from './api';
import { IAiflowEvent, reconnectDelay } from './state';

export type StreamState = 'connecting' | 'open' | 'closed';

export class EventStream {
  constructor(private readonly api: AiflowApi) {}

  get event(): ISignal<this, IAiflowEvent> {
    return this._event;
  }

  get stateChanged(): ISignal<this, StreamState> {
    return this._stateChanged;
  }

  get state(): StreamState {
    return this._state;
  }

  /** Start following after ``since`` (a reconnect resumes after the last event seen). */
  start(since: number): void {
    this.stop();
    this._since = since;
    this._stopped = false;
    this._attempt = 0;
    this._connect();
  }

  stop(): void {
    this._stopped = true;
    window.clearTimeout(this._timer);
    const socket = this._socket;
    this._socket = null; // before close(), so its onclose sees it is no longer current
    socket?.close();
    this._setState('closed');
  }

  private _connect(): void {
    if (this._stopped) {
      return;
    }
    this._setState('connecting');
    const socket = new WebSocket(this.api.streamUrl(this._since));
    this._socket = socket;
    socket.onopen = () => {
      this._attempt = 0;
      this._setState('open');
    };
    socket.onmessage = msg => {
      const event = JSON.parse(String(msg.data)) as IAiflowEvent;
      this._since = Math.max(this._since, event.offset);
      this._event.emit(event);
    };
    socket.onclose = () => {
      if (this._socket !== socket) {
        return;
      }
      this._socket = null;
      this._setState('closed');
      if (!this._stopped) {
        this._timer = window.setTimeout(() => this._connect(), reconnectDelay(this._attempt++));
      }
    };
  }

  private _setState(state: StreamState): void {
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _since = 0;
  private _attempt = 0;
  private _timer = 0;
  private _stopped = true;
  private _socket: WebSocket | null = null;
  private _state: StreamState = 'closed';
  private _event = new Signal<this, IAiflowEvent>(this);
  private _stateChanged = new Signal<this, StreamState>(this);
}

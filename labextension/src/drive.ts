/**
 * A read-only JupyterLab drive of executed notebooks: `aiflow-runs:task-<id>.ipynb`
 * is the notebook of task execution <id>, fetched through the proxy. Nothing is
 * written to the Jupyter root dir, and JupyterLab shows the document read-only.
 */

import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { AiflowApi, ApiError } from './api';

export const DRIVE = 'aiflow-runs';
const PATTERN = /^task-(\d+)(?:-[A-Za-z0-9_.-]+)?\.ipynb$/;

/** The drive path of a task execution's notebook; the task name makes the tab readable. */
export function notebookPath(taskExecutionId: number, task: string): string {
  return `${DRIVE}:task-${taskExecutionId}-${task}.ipynb`;
}

/** Mark every cell not editable nor deletable, which JupyterLab honours, so the record stays as it ran. */
export function lockCells(notebook: unknown): unknown {
  const cells = (notebook as { cells?: { metadata?: Record<string, unknown> }[] })?.cells;
  for (const cell of cells ?? []) {
    cell.metadata = { ...cell.metadata, editable: false, deletable: false };
  }
  return notebook;
}

function readOnly(): Promise<never> {
  return Promise.reject(new Error('executed notebooks of aiflow-nb are read-only (use File > Save As... to copy one)'));
}

export class RunsDrive implements Contents.IDrive {
  readonly name = DRIVE;

  constructor(private readonly api: AiflowApi) {
    this.serverSettings = api.settings;
  }

  readonly serverSettings: ServerConnection.ISettings;

  get fileChanged(): ISignal<Contents.IDrive, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  /** Fetch a task execution's notebook ahead of opening it; false when it has none (not a notebook task). */
  async prefetch(taskExecutionId: number): Promise<boolean> {
    try {
      this._cache.set(taskExecutionId, await this.api.taskNotebook(taskExecutionId));
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        return false;
      }
      throw err;
    }
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const base = { created: '', last_modified: '', writable: false, mimetype: '', format: null, size: undefined };
    if (localPath === '') {
      return { ...base, name: '', path: '', type: 'directory', content: options?.content === false ? null : [] };
    }
    const match = PATTERN.exec(localPath);
    if (!match) {
      throw new Error(`no executed notebook at ${localPath}`);
    }
    const id = Number(match[1]);
    let content: unknown = null;
    if (options?.content !== false) {
      // An executed notebook never changes, so what prefetch got is as good as a new request.
      content = lockCells(this._cache.get(id) ?? (await this.api.taskNotebook(id)));
      this._cache.delete(id);
    }
    return {
      ...base,
      name: localPath,
      path: localPath,
      type: 'notebook',
      format: 'json',
      mimetype: 'application/x-ipynb+json',
      content
    };
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    const match = PATTERN.exec(localPath);
    return match ? this.api.settings.baseUrl + `aiflow/api/v1/task-executions/${match[1]}/notebook` : '';
  }

  newUntitled(): Promise<Contents.IModel> {
    return readOnly();
  }

  delete(): Promise<void> {
    return readOnly();
  }

  rename(): Promise<Contents.IModel> {
    return readOnly();
  }

  save(): Promise<Contents.IModel> {
    return readOnly();
  }

  copy(): Promise<Contents.IModel> {
    return readOnly();
  }

  async createCheckpoint(): Promise<Contents.ICheckpointModel> {
    return { id: 'none', last_modified: '' };
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(): Promise<void> {
    return readOnly();
  }

  async deleteCheckpoint(): Promise<void> {
    // nothing is ever checkpointed
  }

  private _cache = new Map<number, unknown>();
  private _disposed = false;
  private _fileChanged = new Signal<Contents.IDrive, Contents.IChangedArgs>(this);
}

/** The aiflow-nb JupyterLab extension: sidebar panel, status bar item, commands, read-only run notebooks. */

import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { AiflowApi } from './api';
import { fill, h } from './dom';
import { notebookPath, RunsDrive } from './drive';
import { AiflowPanel } from './panel';
import { ITaskExecution } from './state';

const CATEGORY = 'aiflow-nb';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<circle cx="5" cy="6" r="3"/><circle cx="5" cy="18" r="3"/><circle cx="19" cy="12" r="3"/>' +
  '<path d="M7.5 7.5l9 3.5-.7 1.8-9-3.5zM7.5 16.5l9-3.5.7 1.8-9 3.5z"/></g></svg>';

export const aiflowIcon = new LabIcon({ name: 'aiflow-nb:icon', svgstr: ICON_SVG });

export const COMMANDS = {
  open: 'aiflow-nb:open',
  startService: 'aiflow-nb:start-service',
  startExecution: 'aiflow-nb:start-execution',
  stopExecution: 'aiflow-nb:stop-execution',
  startTask: 'aiflow-nb:start-task',
  stopTask: 'aiflow-nb:stop-task',
  restartTask: 'aiflow-nb:restart-task',
  pause: 'aiflow-nb:pause-workflow',
  resume: 'aiflow-nb:resume-workflow',
  sendEvent: 'aiflow-nb:send-event'
};

/** A task execution's log in a main-area tab (one tab per task execution). */
async function showLog(app: JupyterFrontEnd, api: AiflowApi, te: ITaskExecution): Promise<void> {
  const id = `aiflow-nb-log-${te.id}`;
  const pre = h('pre', { class: 'jp-AiflowLog-text' }, 'loading...');
  let widget = Array.from(app.shell.widgets('main')).find(w => w.id === id) as MainAreaWidget | undefined;
  if (!widget) {
    const content = new Widget({ node: h('div', { class: 'jp-AiflowLog' }, pre) });
    widget = new MainAreaWidget({ content });
    widget.id = id;
    widget.title.label = `log: ${te.task} #${te.seq} (${te.id})`;
    widget.title.icon = aiflowIcon;
    widget.title.closable = true;
    app.shell.add(widget, 'main', { mode: 'split-right' });
  } else {
    fill(widget.content.node, pre);
  }
  try {
    pre.textContent = (await api.taskLog(te.id)) || '(the log is empty)';
  } catch (err) {
    pre.textContent = `could not read the log: ${(err as Error).message}`;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'aiflow-nb:plugin',
  description: 'aiflow-nb workflows, executions and events in a sidebar, live.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [ILabShell, ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const api = new AiflowApi(app.serviceManager.serverSettings);
    const drive = new RunsDrive(api);
    app.serviceManager.contents.addDrive(drive);

    const panel = new AiflowPanel(api);
    panel.title.icon = aiflowIcon;
    panel.title.caption = 'aiflow-nb workflows';
    app.shell.add(panel, 'left', { rank: 600 });
    void app.restored.then(() => panel.connect());

    panel.openRequested.connect((_, te) => {
      void showLog(app, api, te);
      // Only notebook tasks have an executed notebook; the drive says which (and keeps what it fetched).
      void drive.prefetch(te.id).then(found => {
        if (found) {
          const widget = docManager.openOrReveal(notebookPath(te.id, te.task));
          if (widget) {
            // A record of a past run: no kernel (set before the context loads, which is async).
            const session = widget.context.sessionContext;
            session.kernelPreference = { ...session.kernelPreference, shouldStart: false, canStart: false };
            widget.title.label = `${te.task} #${te.seq}.ipynb (read-only)`;
            widget.title.caption = `executed notebook of ${te.task} #${te.seq}, task execution ${te.id} (read-only)`;
          }
        }
      }, err => panel.showError(err));
    });

    const { commands } = app;
    const hasWorkflow = () => panel.selectedWorkflow !== null;
    const hasExecution = () => panel.selection.execution !== null;
    const hasTask = () => hasExecution() && panel.selectedTask !== null;
    commands.addCommand(COMMANDS.open, {
      label: 'aiflow-nb: Show the Workflows Panel',
      execute: () => (labShell ? labShell.activateById(panel.id) : app.shell.activateById(panel.id))
    });
    commands.addCommand(COMMANDS.startService, {
      label: 'aiflow-nb: Start the Service',
      execute: () => panel.startService()
    });
    commands.addCommand(COMMANDS.startExecution, {
      label: 'aiflow-nb: Start an Execution of the Selected Workflow',
      isEnabled: hasWorkflow,
      execute: () => panel.startExecution()
    });
    commands.addCommand(COMMANDS.stopExecution, {
      label: 'aiflow-nb: Stop the Selected Execution',
      isEnabled: hasExecution,
      execute: () => panel.stopExecution()
    });
    for (const [command, action, label] of [
      [COMMANDS.startTask, 'start', 'Start'],
      [COMMANDS.stopTask, 'stop', 'Stop'],
      [COMMANDS.restartTask, 'restart', 'Restart']
    ] as const) {
      commands.addCommand(command, {
        label: `aiflow-nb: ${label} the Selected Task`,
        isEnabled: hasTask,
        execute: args => panel.taskAction(action, (args.task as string | undefined) ?? undefined)
      });
    }
    commands.addCommand(COMMANDS.pause, {
      label: 'aiflow-nb: Pause the Selected Workflow',
      isEnabled: () => hasWorkflow() && !panel.selectedWorkflow?.paused,
      execute: () => panel.setPaused(true)
    });
    commands.addCommand(COMMANDS.resume, {
      label: 'aiflow-nb: Resume the Selected Workflow',
      isEnabled: () => !!panel.selectedWorkflow?.paused,
      execute: () => panel.setPaused(false)
    });
    commands.addCommand(COMMANDS.sendEvent, {
      label: 'aiflow-nb: Send an Event',
      execute: () => {
        app.shell.activateById(panel.id);
        panel.focusEventForm();
      }
    });
    if (palette) {
      for (const command of Object.values(COMMANDS)) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    if (statusBar) {
      const node = h('span', { class: 'jp-AiflowStatus', title: 'running aiflow-nb task executions' }, 'aiflow: 0 running');
      const item = new Widget({ node });
      item.addClass('jp-AiflowStatus-item');
      node.addEventListener('click', () => app.shell.activateById(panel.id));
      panel.runningChanged.connect((_, n) => (node.textContent = `aiflow: ${n} running`));
      statusBar.registerStatusItem('aiflow-nb:running', { item, align: 'left', rank: 50 });
    }
  }
};

export default plugin;

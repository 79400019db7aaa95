/** The aiflow-nb JupyterLab extension: sidebar panel, status bar item, commands, read-only run notebooks. */

import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker, INotebookWidgetFactory, NotebookPanel, NotebookWidgetFactory } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { AiflowApi } from './api';
import { AuthorDialog } from './authorDialog';
import { fill, h } from './dom';
import { RunsDrive } from './drive';
import { AiflowPanel } from './panel';
import { notebookPath } from './runs';
import { ITaskExecution } from './state';
import { registerViewer, RUN_FACTORY } from './viewer';
import { renderLargeGraph } from './views';
import { WorkflowView } from './workflowView';

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
  sendEvent: 'aiflow-nb:send-event',
  openLog: 'aiflow-nb:open-log',
  openGraph: 'aiflow-nb:open-graph',
  addToWorkflow: 'aiflow-nb:add-to-workflow',
  openWorkflow: 'aiflow-nb:open-workflow',
  runWithParameters: 'aiflow-nb:run-with-parameters'
};

/** What names a task execution's log tab (the restorer keeps it in the workspace). */
type LogRef = Pick<ITaskExecution, 'id' | 'task' | 'seq'>;

function logRef(args: ReadonlyPartialJSONObject): LogRef | null {
  const { id, task, seq } = args;
  return typeof id === 'number' && typeof task === 'string' && typeof seq === 'number' ? { id, task, seq } : null;
}

/** A task execution's log in a main-area tab (one tab per task execution). */
async function showLog(
  app: JupyterFrontEnd,
  api: AiflowApi,
  logs: WidgetTracker<MainAreaWidget>,
  te: LogRef
): Promise<void> {
  const id = `aiflow-nb-log-${te.id}`;
  const pre = h('pre', { class: 'jp-AiflowLog-text' }, 'loading...');
  let widget = logs.find(w => w.id === id);
  if (!widget) {
    const content = new Widget({ node: h('div', { class: 'jp-AiflowLog' }, pre) });
    widget = new MainAreaWidget({ content });
    widget.id = id;
    widget.title.label = `log: ${te.task} #${te.seq} (${te.id})`;
    widget.title.icon = aiflowIcon;
    widget.title.closable = true;
    logRefs.set(widget, te);
    app.shell.add(widget, 'main', { mode: 'split-right' });
    void logs.add(widget);
  } else {
    fill(widget.content.node, pre);
  }
  try {
    pre.textContent = (await api.taskLog(te.id)) || '(the log is empty)';
  } catch (err) {
    pre.textContent = `could not read the log: ${(err as Error).message}`;
  }
}

const logRefs = new WeakMap<Widget, LogRef>();

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'aiflow-nb:plugin',
  description: 'aiflow-nb workflows, executions and events in a sidebar, live.',
  autoStart: true,
  requires: [IDocumentManager, IRenderMimeRegistry, IEditorServices, NotebookPanel.IContentFactory],
  optional: [
    ILabShell,
    ICommandPalette,
    IStatusBar,
    ILayoutRestorer,
    INotebookWidgetFactory,
    IFileBrowserFactory,
    INotebookTracker
  ],
  activate: (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    rendermime: IRenderMimeRegistry,
    editorServices: IEditorServices,
    contentFactory: NotebookPanel.IContentFactory,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null,
    notebookFactory: NotebookWidgetFactory.IFactory | null,
    browsers: IFileBrowserFactory | null,
    notebooks: INotebookTracker | null
  ) => {
    const api = new AiflowApi(app.serviceManager.serverSettings);
    const drive = new RunsDrive(api);
    app.serviceManager.contents.addDrive(drive);
    registerViewer(app, { rendermime, editorServices, contentFactory, notebookFactory, restorer, icon: aiflowIcon });
    const logs = new WidgetTracker<MainAreaWidget>({ namespace: 'aiflow-nb-log' });
    app.commands.addCommand(COMMANDS.openLog, {
      label: 'aiflow-nb: Show the Log of a Task Execution',
      execute: args => {
        const ref = logRef(args);
        return ref ? showLog(app, api, logs, ref) : undefined;
      }
    });
    if (restorer) {
      void restorer.restore(logs, {
        command: COMMANDS.openLog,
        args: w => ({ ...(logRefs.get(w) ?? {}) }),
        name: w => w.id
      });
    }

    const panel = new AiflowPanel(api);
    panel.title.icon = aiflowIcon;
    panel.title.caption = 'aiflow-nb workflows';
    app.shell.add(panel, 'left', { rank: 600 });
    void app.restored.then(() => panel.connect());

    const openRun = (te: ITaskExecution) => {
      void showLog(app, api, logs, te);
      // Only notebook tasks have an executed notebook; the drive says which (and keeps what it fetched).
      void drive.prefetch(te.id).then(found => {
        if (found) {
          // A record of a past run, in the viewer that never has a kernel.
          docManager.openOrReveal(notebookPath(te.id, te.task, te.seq), RUN_FACTORY);
        }
      }, err => panel.showError(err));
    };
    panel.openRequested.connect((_, te) => openRun(te));

    // The selected workflow's graph at its own size in a main-area tab, following the panel's selection.
    let large: MainAreaWidget | null = null;
    const showGraph = () => {
      if (!large || large.isDisposed) {
        const content = new Widget({ node: h('div', { class: 'jp-AiflowGraph' }) });
        large = new MainAreaWidget({ content });
        large.id = 'aiflow-nb-graph';
        large.title.icon = aiflowIcon;
        large.title.closable = true;
        app.shell.add(large, 'main', { mode: 'split-right' });
      }
      large.title.label = `graph: ${panel.graphTitle || 'no workflow'}`;
      renderLargeGraph(large.content.node, panel.graph);
      app.shell.activateById(large.id);
    };
    panel.graphRequested.connect(showGraph);
    panel.graphChanged.connect(() => {
      if (large && !large.isDisposed) {
        large.title.label = `graph: ${panel.graphTitle}`;
        renderLargeGraph(large.content.node, panel.graph);
      }
    });

    const { commands } = app;
    const hasWorkflow = () => panel.selectedWorkflow !== null;
    const hasExecution = () => panel.selection.execution !== null;
    const hasTask = () => hasExecution() && panel.selectedTask !== null;
    commands.addCommand(COMMANDS.open, {
      label: 'aiflow-nb: Show the Workflows Panel',
      execute: () => (labShell ? labShell.activateById(panel.id) : app.shell.activateById(panel.id))
    });
    commands.addCommand(COMMANDS.openGraph, {
      label: "aiflow-nb: Show the Selected Workflow's Graph Large",
      isEnabled: hasWorkflow,
      execute: showGraph
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
    // -- authoring: "Add to workflow..." and a workflow in the main area ---------------------------------
    /** The notebook the command is for: its argument, the file browser's selection, or the current notebook. */
    const notebookFor = (args: ReadonlyPartialJSONObject): string | null => {
      if (typeof args.path === 'string') {
        return args.path;
      }
      if (args.from === 'browser' && browsers?.tracker.currentWidget) {
        const model = browsers.tracker.currentWidget.selectedItems().next().value;
        if (model?.path?.endsWith('.ipynb')) {
          return model.path;
        }
      }
      return notebooks?.currentWidget?.context.path ?? null;
    };
    const openWorkflow = (namespace: string, name: string) => {
      const id = `aiflow-nb-workflow-${namespace}-${name}`;
      let widget = views.find(w => w.id === id);
      if (!widget) {
        const content = new WorkflowView(api, namespace, name);
        widget = new MainAreaWidget({ content });
        widget.id = id;
        widget.title.label = `workflow: ${namespace}/${name}`;
        widget.title.icon = aiflowIcon;
        widget.title.closable = true;
        content.openRequested.connect((_, te) => openRun(te));
        content.deleted.connect(() => {
          widget?.dispose();
          panel.refresh();
        });
        workflowRefs.set(widget, { namespace, name });
        app.shell.add(widget, 'main');
        void views.add(widget);
      }
      void (widget.content as WorkflowView).refresh();
      app.shell.activateById(id);
    };
    const views = new WidgetTracker<MainAreaWidget>({ namespace: 'aiflow-nb-workflow' });
    const workflowRefs = new WeakMap<Widget, { namespace: string; name: string }>();
    let viewTimer = 0;
    panel.stream.event.connect((_, e) => {
      if (e.key.startsWith('aiflow.')) {
        window.clearTimeout(viewTimer);
        viewTimer = window.setTimeout(() => views.forEach(w => void (w.content as WorkflowView).refresh()), 300);
      }
    });
    commands.addCommand(COMMANDS.openWorkflow, {
      label: 'aiflow-nb: Open the Selected Workflow in the Main Area',
      isEnabled: args => typeof args.name === 'string' || hasWorkflow(),
      execute: args => {
        const wf = panel.selectedWorkflow;
        const name = typeof args.name === 'string' ? args.name : wf?.name;
        const namespace = typeof args.namespace === 'string' ? args.namespace : (wf?.namespace ?? 'default');
        if (name) {
          openWorkflow(namespace, name);
        }
      }
    });
    commands.addCommand(COMMANDS.runWithParameters, {
      label: 'aiflow-nb: Run the Selected Workflow with Parameters…',
      isEnabled: () => hasWorkflow(),
      execute: () => panel.runWithParameters()
    });
    panel.workflowRequested.connect((_, wf) => openWorkflow(wf.namespace, wf.name));
    if (restorer) {
      void restorer.restore(views, {
        command: COMMANDS.openWorkflow,
        args: w => ({ ...(workflowRefs.get(w) ?? {}) }),
        name: w => w.id
      });
    }
    commands.addCommand(COMMANDS.addToWorkflow, {
      label: args => (args.from === 'browser' ? 'Add to Workflow…' : 'aiflow-nb: Add the Notebook to a Workflow…'),
      caption: 'Make this notebook a task of a new or existing aiflow-nb workflow',
      icon: args => (args.from === 'browser' ? aiflowIcon : undefined),
      isEnabled: args => notebookFor(args) !== null,
      execute: async args => {
        const path = notebookFor(args);
        if (!path) {
          return;
        }
        const dialog = new AuthorDialog(api, path);
        void dialog.open();
        const submitted = await dialog.done;
        if (submitted) {
          app.shell.activateById(panel.id);
          panel.showSubmitted(submitted, submitted.start);
        }
      }
    });
    app.contextMenu.addItem({
      command: COMMANDS.addToWorkflow,
      args: { from: 'browser' },
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 60
    });
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (nb: NotebookPanel) => {
        const button = new ToolbarButton({
          icon: aiflowIcon,
          label: 'Add to workflow…',
          className: 'jp-AiflowAddToWorkflow',
          tooltip: 'Make this notebook a task of an aiflow-nb workflow',
          onClick: () => void commands.execute(COMMANDS.addToWorkflow, { path: nb.context.path })
        });
        nb.toolbar.insertItem(10, 'aiflowAddToWorkflow', button);
        return button;
      }
    });

    if (palette) {
      for (const command of Object.values(COMMANDS).filter(c => c !== COMMANDS.openLog)) {
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

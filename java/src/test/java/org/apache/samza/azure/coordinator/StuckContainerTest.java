package org.apache.samza.azure.coordinator;

import static org.junit.Assert.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.microsoft.azure.storage.CloudStorageAccount;
import com.microsoft.azure.storage.table.CloudTable;
import com.microsoft.azure.storage.table.DynamicTableEntity;
import com.microsoft.azure.storage.table.TableQuery;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import org.apache.samza.azure.AzureJobCoordinatorFactory;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.config.MapConfig;
import org.apache.samza.processor.StreamProcessor;
import org.apache.samza.runtime.ProcessorLifecycleListener;
import org.apache.samza.system.IncomingMessageEnvelope;
import org.apache.samza.task.MessageCollector;
import org.apache.samza.task.StreamTask;
import org.apache.samza.task.StreamTaskFactory;
import org.apache.samza.task.TaskCoordinator;
import org.junit.Test;
import org.slf4j.LoggerFactory;

/**
 * A real StreamProcessor whose container does not stop within {@code task.shutdown.ms} (its task is
 * stuck in process()): the coordinator must not tell the native side that it stopped, since the
 * membership row would then go and others could take the partitions while it still runs.
 */
public class StuckContainerTest extends AzuriteTest {
  static final CountDownLatch ENTERED = new CountDownLatch(1);
  static final CountDownLatch RELEASE = new CountDownLatch(1);

  /** Stuck in its first message until the test releases it; ignores interrupts, as hung I/O may. */
  static final class StuckTask implements StreamTask {
    @Override
    public void process(IncomingMessageEnvelope m, MessageCollector c, TaskCoordinator tc) {
      ENTERED.countDown();
      boolean interrupted = false;
      while (true) {
        try {
          RELEASE.await();
          break;
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static boolean rowExists(String job, String processor) {
    try {
      CloudTable table =
          CloudStorageAccount.parse(azurite.connectionString())
              .createCloudTableClient()
              .getTableReference(Native.jobStorageNames(job, "1")[1]);
      // By row key in any partition: the membership is spread over partitions by id.
      String filter =
          TableQuery.generateFilterCondition(
              "RowKey", TableQuery.QueryComparisons.EQUAL, processor);
      return table
          .execute(TableQuery.from(DynamicTableEntity.class).where(filter))
          .iterator()
          .hasNext();
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  @Test
  public void containerThatDidNotStopIsNotReportedReleased() throws Exception {
    String job = "stuck";
    Path dir = Files.createTempDirectory("samza-azure-stuck");
    Files.createDirectories(dir.resolve("input"));
    Files.write(dir.resolve("input").resolve("0"), "m0\nm1\nm2\n".getBytes(StandardCharsets.UTF_8));
    Map<String, String> config = new HashMap<>(azurite.config());
    config.put("job.name", job);
    config.put("processor.id", "p1");
    config.put("job.coordinator.factory", AzureJobCoordinatorFactory.class.getName());
    config.put("task.chooser.class", "org.apache.samza.azure.FencedChooserFactory");
    config.put("systems.fs.samza.factory", "org.apache.samza.azure.testing.job.FileSystemFactory");
    config.put("systems.fs.dir", dir.toString());
    config.put("systems.fs.default.stream.samza.offset.default", "oldest");
    config.put("task.inputs", "fs.input");
    config.put("task.shutdown.ms", "1000");

    Logger log = (Logger) LoggerFactory.getLogger(AzureJobCoordinator.class);
    ListAppender<ILoggingEvent> appender = new ListAppender<>();
    appender.start();
    log.addAppender(appender);
    CountDownLatch ended = new CountDownLatch(1);
    StreamProcessor sp =
        new StreamProcessor(
            "p1",
            new MapConfig(config),
            Collections.emptyMap(),
            (StreamTaskFactory) StuckTask::new,
            Optional.empty(),
            Optional.empty(),
            Optional.empty(),
            p ->
                new ProcessorLifecycleListener() {
                  @Override
                  public void afterStop() {
                    ended.countDown();
                  }

                  @Override
                  public void afterFailure(Throwable t) {
                    ended.countDown();
                  }
                },
            null,
            null);
    try {
      sp.start();
      Await.until("the task to be stuck in a message", 60_000, () -> ENTERED.getCount() == 0);
      assertTrue("p1 registered", rowExists(job, "p1"));

      // As on SIGTERM: StreamProcessor gives the container task.shutdown.ms, then stops the
      // coordinator although the container still runs.
      Thread stopper = new Thread(sp::stop, "stopper");
      stopper.start();
      Await.until(
          "the coordinator to handle the release",
          30_000,
          () ->
              !rowExists(job, "p1")
                  || appender.list.stream()
                      .anyMatch(e -> e.getFormattedMessage().contains("did not stop")));
      assertTrue(
          "p1's membership row was deleted while its container was still processing a message",
          rowExists(job, "p1"));

      // Once the container really stops, the processor leaves.
      RELEASE.countDown();
      Await.until("p1 to leave once its container stopped", 30_000, () -> !rowExists(job, "p1"));
      Await.until("the processor to end", 30_000, () -> ended.getCount() == 0);
      stopper.join(30_000);
    } finally {
      RELEASE.countDown();
      log.detachAppender(appender);
      sp.stop();
    }
  }
}

package org.apache.samza.azure;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.util.concurrent.TimeoutException;
import org.apache.samza.SamzaException;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.errors.FencedWriteException;
import org.apache.samza.azure.errors.StorageAuthenticationException;
import org.apache.samza.azure.errors.TransientStorageException;
import org.junit.Test;

/** Which processor failures the runner answers with a rejoin, and how long it waits. */
public class AzureApplicationRunnerTest {
  @Test
  public void coordinationFailuresRejoinAndTheJobsOwnFailuresDoNot() {
    // What Samza hands the runner after a failed commit: its own wrapper around ours.
    assertTrue(
        AzureApplicationRunner.rejoinable(
            new SamzaException(
                "Unrecoverable error during pending commit for taskName: Partition 0.",
                new FencedWriteException("the checkpoint of task 'Partition 0' was refused"))));
    assertTrue(AzureApplicationRunner.rejoinable(new TransientStorageException("refused")));
    assertFalse(AzureApplicationRunner.rejoinable(new AzureConfigException("job.name: missing")));
    assertFalse(
        AzureApplicationRunner.rejoinable(
            new SamzaException(new StorageAuthenticationException("key rejected"))));
    assertFalse(AzureApplicationRunner.rejoinable(new IllegalStateException("the job's bug")));
    assertFalse(
        AzureApplicationRunner.rejoinable(
            new TimeoutException("Container shutdown timed out after 5000 ms.")));
  }

  @Test
  public void rejoinsBackOffFromOneSecondToOneMinute() {
    assertEquals(1000, AzureApplicationRunner.rejoinDelayMillis(1));
    assertEquals(2000, AzureApplicationRunner.rejoinDelayMillis(2));
    assertEquals(32_000, AzureApplicationRunner.rejoinDelayMillis(6));
    assertEquals(60_000, AzureApplicationRunner.rejoinDelayMillis(7));
    assertEquals(60_000, AzureApplicationRunner.rejoinDelayMillis(1000));
  }
}

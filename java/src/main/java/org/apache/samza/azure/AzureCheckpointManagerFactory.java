package org.apache.samza.azure;

import org.apache.samza.azure.checkpoint.AzureCheckpointManager;
import org.apache.samza.checkpoint.CheckpointManager;
import org.apache.samza.checkpoint.CheckpointManagerFactory;
import org.apache.samza.config.Config;
import org.apache.samza.metrics.MetricsRegistry;

/**
 * {@code task.checkpoint.factory=org.apache.samza.azure.AzureCheckpointManagerFactory}: task
 * checkpoints in Azure Table Storage, fenced against processors that lost their tasks. See
 * docs/configuration.md.
 */
public final class AzureCheckpointManagerFactory implements CheckpointManagerFactory {
  @Override
  public CheckpointManager getCheckpointManager(Config config, MetricsRegistry registry) {
    return new AzureCheckpointManager(config, registry);
  }
}

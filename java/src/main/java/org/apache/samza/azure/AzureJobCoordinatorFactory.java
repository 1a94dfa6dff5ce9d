package org.apache.samza.azure;

import org.apache.samza.azure.coordinator.AzureJobCoordinator;
import org.apache.samza.config.Config;
import org.apache.samza.coordinator.JobCoordinator;
import org.apache.samza.coordinator.JobCoordinatorFactory;
import org.apache.samza.metadatastore.MetadataStore;
import org.apache.samza.metrics.MetricsRegistry;

/**
 * {@code job.coordinator.factory=org.apache.samza.azure.AzureJobCoordinatorFactory}: Samza
 * standalone coordinated through Azure Storage. Run the application with {@link
 * AzureApplicationRunner} ({@code app.runner.class}); Samza's LocalApplicationRunner refuses
 * coordinator factories it does not know.
 */
public final class AzureJobCoordinatorFactory implements JobCoordinatorFactory {
  @Override
  public JobCoordinator getJobCoordinator(
      String processorId, Config config, MetricsRegistry registry, MetadataStore metadataStore) {
    return new AzureJobCoordinator(processorId, config, registry);
  }
}
